package main

import (
	"net"
	"sync"
)

// HTTP/2 frame type names (RFC 9113, section 6).
var frameTypes = map[byte]string{0: "DATA", 1: "HEADERS", 2: "PRIORITY", 3: "RST_STREAM",
	4: "SETTINGS", 5: "PUSH_PROMISE", 6: "PING", 7: "GOAWAY", 8: "WINDOW_UPDATE",
	9: "CONTINUATION"}

const prefaceLen = 24 // "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", written by the client only

// frameCounter follows one direction of an HTTP/2 byte stream and counts
// its frames by type (a PING with the ACK flag counts as PING_ACK).
type frameCounter struct {
	skip   int    // preface or payload bytes still to pass over
	header []byte // the frame header read so far
	counts map[string]int
}

func (f *frameCounter) feed(p []byte) {
	for len(p) > 0 {
		if f.skip > 0 {
			n := f.skip
			if n > len(p) {
				n = len(p)
			}
			f.skip -= n
			p = p[n:]
			continue
		}
		need := 9 - len(f.header)
		if need > len(p) {
			need = len(p)
		}
		f.header = append(f.header, p[:need]...)
		p = p[need:]
		if len(f.header) < 9 {
			return
		}
		length := int(f.header[0])<<16 | int(f.header[1])<<8 | int(f.header[2])
		name, ok := frameTypes[f.header[3]]
		if !ok {
			name = "UNKNOWN"
		}
		if name == "PING" && f.header[4]&1 != 0 {
			name = "PING_ACK"
		}
		f.counts[name]++
		f.skip = length
		f.header = f.header[:0]
	}
}

// frameTap wraps the connections grpc-go dials and counts what crosses them.
type frameTap struct {
	mu      sync.Mutex
	out, in *frameCounter
}

func newFrameTap() *frameTap {
	return &frameTap{out: &frameCounter{skip: prefaceLen, counts: map[string]int{}},
		in: &frameCounter{counts: map[string]int{}}}
}

type tappedConn struct {
	net.Conn
	tap *frameTap
}

// wrap taps a new connection; frames of every connection are counted
// together (a reconnection starts with its own preface).
func (t *frameTap) wrap(c net.Conn) net.Conn {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.out.skip, t.out.header = prefaceLen, t.out.header[:0]
	t.in.skip, t.in.header = 0, t.in.header[:0]
	return &tappedConn{Conn: c, tap: t}
}

func (c *tappedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.tap.mu.Lock()
	c.tap.in.feed(p[:n])
	c.tap.mu.Unlock()
	return n, err
}

func (c *tappedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.tap.mu.Lock()
	c.tap.out.feed(p[:n])
	c.tap.mu.Unlock()
	return n, err
}

func (t *frameTap) counts() (map[string]int, map[string]int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	out, in := map[string]int{}, map[string]int{}
	for k, v := range t.out.counts {
		out[k] = v
	}
	for k, v := range t.in.counts {
		in[k] = v
	}
	return out, in
}
