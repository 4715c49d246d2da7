// crn-grpcgo: a CRI client built on grpc-go, dialled the way the kubelet's
// CRI client dials (k8s.io/cri-client's NewRemoteRuntimeService: unix
// socket through a context dialer, insecure transport, a 16 MiB receive
// limit and grpc-go's default send limit, no keepalive, deadlines from
// contexts), to run scenarios against crio-native's own gRPC server.
//
// It knows no CRI types: request and response messages pass as raw bytes
// (a codec named "proto", so the content-type is application/grpc as with
// generated code), built and read by the Python tests.
//
// The scenario comes on stdin as JSON (see Script); one JSON object per
// line goes to stdout as things happen: {"i":N,"ready":true} once a
// stream is opened, {"i":N,"message":"hex"} per streamed answer,
// {"i":N,"code":C,"message":"...","response":"hex","ms":T} when a call
// ends, and last {"done":true,"frames_out":{...},"frames_in":{...}} with
// the HTTP/2 frames written and read, by type (from a tap on the socket).
package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The kubelet's CRI client's receive limit (it sets no send limit).
const maxMsgSize = 16 * 1024 * 1024

// Call is one RPC of a script.
type Call struct {
	Method        string `json:"method"`
	Request       string `json:"request"`         // hex of the serialized request
	Stream        bool   `json:"stream"`          // server streaming
	MaxMessages   int    `json:"max_messages"`    // stream: cancel after this many (0: read to the end)
	TimeoutMs     int    `json:"timeout_ms"`      // a context deadline (0: none)
	CancelAfterMs int    `json:"cancel_after_ms"` // cancel the context after this long (0: never)
	After         *int   `json:"after"`           // start once call N has ended
	Quiet         bool   `json:"quiet"`           // leave out the response bytes
}

// Script is what stdin holds.
type Script struct {
	Concurrency int    `json:"concurrency"` // calls in flight at once (0: all)
	Calls       []Call `json:"calls"`
}

// rawCodec passes []byte through; its name makes grpc-go send
// content-type application/grpc, as the kubelet's generated stubs do.
type rawCodec struct{}

func (rawCodec) Marshal(v interface{}) ([]byte, error) {
	switch b := v.(type) {
	case []byte:
		return b, nil
	case *[]byte:
		return *b, nil
	}
	return nil, fmt.Errorf("rawCodec: cannot marshal %T", v)
}

func (rawCodec) Unmarshal(data []byte, v interface{}) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("rawCodec: cannot unmarshal into %T", v)
	}
	*b = append([]byte(nil), data...)
	return nil
}

func (rawCodec) Name() string { return "proto" }

var (
	outMu sync.Mutex
	enc   = json.NewEncoder(os.Stdout)
)

func emit(v map[string]interface{}) {
	outMu.Lock()
	defer outMu.Unlock()
	_ = enc.Encode(v)
}

func main() {
	socket := flag.String("socket", "", "the CRI unix socket")
	authority := flag.String("authority", "",
		"the :authority (the kubelet sets \"localhost\"; without it grpc-go 1.33 sends the socket path)")
	subtype := flag.String("subtype", "", "content-subtype (\"proto\": application/grpc+proto)")
	dialTimeout := flag.Duration("dial-timeout", 10*time.Second, "connection timeout")
	flag.Parse()
	var script Script
	if err := json.NewDecoder(os.Stdin).Decode(&script); err != nil {
		fmt.Fprintln(os.Stderr, "bad script:", err)
		os.Exit(2)
	}
	tap := newFrameTap()
	dialer := func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "unix", addr)
		if err != nil {
			return nil, err
		}
		return tap.wrap(c), nil
	}
	callOpts := []grpc.CallOption{grpc.MaxCallRecvMsgSize(maxMsgSize)}
	if *subtype != "" {
		callOpts = append(callOpts, grpc.CallContentSubtype(*subtype))
	}
	callOpts = append(callOpts, grpc.ForceCodec(rawCodec{}))
	opts := []grpc.DialOption{grpc.WithInsecure(), grpc.WithContextDialer(dialer),
		grpc.WithDefaultCallOptions(callOpts...)}
	if *authority != "" {
		opts = append(opts, grpc.WithAuthority(*authority))
	}
	ctx, cancel := context.WithTimeout(context.Background(), *dialTimeout)
	conn, err := grpc.DialContext(ctx, *socket, opts...)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "dial:", err)
		os.Exit(3)
	}
	run(conn, script)
	conn.Close()
	out, in := tap.counts()
	emit(map[string]interface{}{"done": true, "frames_out": out, "frames_in": in})
}

func run(conn *grpc.ClientConn, script Script) {
	ended := make([]chan struct{}, len(script.Calls))
	for i := range ended {
		ended[i] = make(chan struct{})
	}
	limit := script.Concurrency
	if limit <= 0 {
		limit = len(script.Calls) + 1
	}
	slots := make(chan struct{}, limit)
	var wg sync.WaitGroup
	for i, c := range script.Calls {
		wg.Add(1)
		go func(i int, c Call) {
			defer wg.Done()
			defer close(ended[i])
			if c.After != nil {
				<-ended[*c.After]
			}
			slots <- struct{}{}
			defer func() { <-slots }()
			one(conn, i, c)
		}(i, c)
	}
	wg.Wait()
}

func one(conn *grpc.ClientConn, i int, c Call) {
	request, err := hex.DecodeString(c.Request)
	if err != nil {
		emit(map[string]interface{}{"i": i, "error": "bad request hex: " + err.Error()})
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if c.TimeoutMs > 0 {
		ctx, cancel = context.WithTimeout(ctx, time.Duration(c.TimeoutMs)*time.Millisecond)
		defer cancel()
	}
	if c.CancelAfterMs > 0 {
		timer := time.AfterFunc(time.Duration(c.CancelAfterMs)*time.Millisecond, cancel)
		defer timer.Stop()
	}
	start := time.Now()
	var response []byte
	if c.Stream {
		err = stream(ctx, cancel, conn, i, c, request)
	} else {
		err = conn.Invoke(ctx, c.Method, request, &response)
	}
	st, _ := status.FromError(err)
	result := map[string]interface{}{
		"i": i, "code": int(st.Code()), "code_name": st.Code().String(),
		"message": st.Message(), "ms": float64(time.Since(start).Microseconds()) / 1000,
	}
	if err == nil && !c.Stream {
		result["size"] = len(response)
		if !c.Quiet {
			result["response"] = hex.EncodeToString(response)
		}
	}
	emit(result)
}

func stream(ctx context.Context, cancel context.CancelFunc, conn *grpc.ClientConn, i int,
	c Call, request []byte) error {
	s, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, c.Method)
	if err != nil {
		return err
	}
	if err := s.SendMsg(request); err != nil {
		return err
	}
	if err := s.CloseSend(); err != nil {
		return err
	}
	emit(map[string]interface{}{"i": i, "ready": true})
	for n := 0; ; n++ {
		if c.MaxMessages > 0 && n == c.MaxMessages {
			cancel() // as the kubelet does when it stops watching: RST_STREAM(CANCEL)
			return status.Error(codes.Canceled, "client read enough")
		}
		var m []byte
		if err := s.RecvMsg(&m); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		emit(map[string]interface{}{"i": i, "message": hex.EncodeToString(m)})
	}
}
