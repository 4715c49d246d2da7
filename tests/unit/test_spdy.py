"""SPDY/3.1 framing (crio_native.streaming.spdy): client/server pairs in memory,
frames checked against bytes worked out by hand from the SPDY/3 draft, and
header blocks from another implementation decoded."""
from __future__ import annotations

import struct
import zlib

import pytest

from crio_native.streaming import spdy
from crio_native.streaming.spdy import (
    DataReceived, GoAwayReceived, HeadersReceived, PingAcknowledged,
    PingReceived, ProtocolError, RstStatus, Setting, SettingsReceived,
    SpdyConnection, SpdyError, StreamClosedError, StreamOpened, StreamReplied,
    StreamReset, WindowUpdated,
)
from crio_native.streaming.spdy_dictionary import SPDY3_DICTIONARY

KIB = 1024


def pair(**server_kw):
    return SpdyConnection(client=True), SpdyConnection(client=False, **server_kw)


def pump(src: SpdyConnection, dst: SpdyConnection) -> list:
    return dst.receive_data(src.data_to_send())


class RawPeer:
    """Builds frames without SpdyConnection, with its own zlib context, so the
    receive side is tested against an encoder it does not share code with."""

    def __init__(self):
        self.z = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY,
                                  SPDY3_DICTIONARY)

    def block(self, pairs: list[tuple[bytes, bytes]]) -> bytes:
        raw = struct.pack("!I", len(pairs)) + b"".join(
            struct.pack("!I", len(n)) + n + struct.pack("!I", len(v)) + v for n, v in pairs)
        return self.z.compress(raw) + self.z.flush(zlib.Z_SYNC_FLUSH)

    def syn_stream(self, stream_id, pairs, flags=0, priority=0, assoc=0) -> bytes:
        payload = struct.pack("!IIBB", stream_id, assoc, priority << 5, 0) + self.block(pairs)
        return struct.pack("!HHI", 0x8003, 1, (flags << 24) | len(payload)) + payload


# ------------------------------------------------------------------ the spec


def test_dictionary_is_the_spec_one():
    assert len(SPDY3_DICTIONARY) == 1423
    assert SPDY3_DICTIONARY.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head")
    assert SPDY3_DICTIONARY.endswith(b"charset=iso-8859-1,utf-,*,enq=0.")
    # Every SPDY/3 header block's zlib header carries this Adler-32 dictionary id.
    assert zlib.adler32(SPDY3_DICTIONARY) == 0xE3C6A7C2


@pytest.mark.parametrize("make, expected", [
    (lambda c: c.ping(), "80 03 00 06 00 00 00 04 00 00 00 01"),
    (lambda c: c.go_away(), "80 03 00 07 00 00 00 08 00 00 00 00 00 00 00 00"),
    (lambda c: c.go_away(spdy.GoAwayStatus.INTERNAL_ERROR),
     "80 03 00 07 00 00 00 08 00 00 00 00 00 00 00 02"),
    (lambda c: c.reset(1, RstStatus.PROTOCOL_ERROR),
     "80 03 00 03 00 00 00 08 00 00 00 01 00 00 00 01"),
    (lambda c: c.reset(0x7FFFFFFF, RstStatus.CANCEL),
     "80 03 00 03 00 00 00 08 7f ff ff ff 00 00 00 05"),
    (lambda c: c.send_settings({Setting.INITIAL_WINDOW_SIZE: 0x0A0B0C0D}),
     "80 03 00 04 00 00 00 0c 00 00 00 01 00 00 00 07 0a 0b 0c 0d"),
    (lambda c: c.send_settings({}), "80 03 00 04 00 00 00 04 00 00 00 00"),
])
def test_control_frames_match_hand_computed_bytes(make, expected):
    conn = SpdyConnection(client=True)
    make(conn)
    assert conn.data_to_send() == bytes.fromhex(expected)


def test_server_pings_are_even():
    server = SpdyConnection(client=False)
    assert [server.ping(), server.ping()] == [2, 4]
    assert server.data_to_send() == bytes.fromhex(
        "80 03 00 06 00 00 00 04 00 00 00 02 80 03 00 06 00 00 00 04 00 00 00 04")


def test_data_frame_and_syn_stream_layout():
    client = SpdyConnection(client=True)
    sid = client.open_stream({"bar": "foo"}, priority=4)
    syn = client.data_to_send()
    # control bit + version 3, type 1, flags 0, 24-bit length, stream 1, assoc 0,
    # priority 4 in the top three bits, slot 0, then the zlib block.
    assert syn[:4] == bytes.fromhex("80 03 00 01")
    assert syn[4] == 0 and int.from_bytes(syn[5:8], "big") == len(syn) - 8
    assert syn[8:18] == bytes.fromhex("00 00 00 01 00 00 00 00 80 00")
    block = syn[18:]
    assert block[0] & 0x0F == 8 and block[1] & 0x20  # deflate, preset dictionary
    assert block[2:6] == bytes.fromhex("e3 c6 a7 c2")
    assert block.endswith(b"\x00\x00\xff\xff")  # Z_SYNC_FLUSH marker
    inflated = zlib.decompressobj(zdict=SPDY3_DICTIONARY).decompress(block)
    # count 1, then length-prefixed name and value (draft 3, 2.6.10).
    assert inflated == b"\0\0\0\x01" + b"\0\0\0\x03bar" + b"\0\0\0\x03foo"

    client.receive_data(_reply_frame(sid))
    client.send_data(sid, b"hi", fin=True)
    assert client.data_to_send() == bytes.fromhex("00 00 00 01 01 00 00 02 68 69")


def _reply_frame(stream_id: int) -> bytes:
    # A SYN_REPLY with no headers, compressed by an independent context.
    payload = struct.pack("!I", stream_id) + RawPeer().block([])
    return struct.pack("!HHI", 0x8003, 2, len(payload)) + payload


# Chromium's SPDY/3 framer output (its framer unit-test vectors) for stream 1,
# headers bar: foo and foo: bar: a SYN_STREAM at priority 4 from its two zlib
# builds, and a SYN_REPLY.
CHROMIUM_SYN_STREAM = [
    "80030001 00000037 00000001 00000000 800038ea e3c6a7c2 02e50e50 c24b4a04"
    "e50b6680 004acbcf 07082010 95969f0f a2000228 29b10820 80000000 00ffff",
    "80030001 00000032 00000001 00000000 800038ea e3c6a7c2 02e50e50 c24b4a04"
    "e50b6680 004acbcf 07082024 0a208092 128b0002 08000000 ffff",
]
CHROMIUM_SYN_REPLY = (
    "80030002 00000031 00000001 38eae3c6 a7c202e5 0e50c24b 4a04e50b 6680004a"
    "cbcf0708 20109596 9f0fa200 022829b1 08208000 000000ff ff")


@pytest.mark.parametrize("wire", CHROMIUM_SYN_STREAM)
def test_decodes_syn_stream_compressed_by_another_implementation(wire):
    events = SpdyConnection(client=False).receive_data(bytes.fromhex(wire))
    assert events == [StreamOpened(1, {"bar": "foo", "foo": "bar"}, False, 0, 4, False)]


def test_decodes_syn_reply_compressed_by_another_implementation():
    client = SpdyConnection(client=True)
    client.open_stream({"bar": "foo"})
    events = client.receive_data(bytes.fromhex(CHROMIUM_SYN_REPLY))
    assert events == [StreamReplied(1, {"bar": "foo", "foo": "bar"}, False)]


# --------------------------------------------------------- sessions in memory


def test_exec_style_session_both_directions():
    client, server = pair()
    ids = {}
    for kind in ("error", "stdin", "stdout", "stderr"):
        ids[kind] = client.open_stream({"streamType": kind, "requestID": "1"})
    assert list(ids.values()) == [1, 3, 5, 7]
    opened = pump(client, server)
    assert [e.headers for e in opened] == [
        {"streamtype": k, "requestid": "1"} for k in ("error", "stdin", "stdout", "stderr")]
    for sid in ids.values():
        server.reply(sid, {})
    assert pump(server, client) == [StreamReplied(s, {}, False) for s in ids.values()]

    client.send_data(ids["stdin"], b"echo hi\n", fin=True)
    assert pump(client, server) == [DataReceived(3, b"echo hi\n", True)]
    server.send_data(ids["stdout"], b"hi\n")
    server.send_data(ids["stderr"], b"", fin=True)
    server.send_data(ids["error"], b'{"status":"Success"}', fin=True)
    assert pump(server, client) == [
        DataReceived(5, b"hi\n", False), DataReceived(7, b"", True),
        DataReceived(1, b'{"status":"Success"}', True)]
    # stdin: client FIN, server never sends on it: still half-open on both sides.
    assert client.is_open(3) and server.is_open(3)
    server.end_stream(3)
    client.end_stream(1)
    client.end_stream(7)
    pump(server, client), pump(client, server)
    assert not server.is_open(1) and not client.is_open(1)
    assert not server.is_open(3) and not client.is_open(3)
    assert not server.is_open(7) and server.is_open(5)


def test_port_forward_headers_and_multi_values():
    client, server = pair()
    client.open_stream({"streamtype": "data", "port": "8080", "requestid": "0",
                        "x-multi": ["a", "b"]})
    client.open_stream({"streamtype": "error", "port": "8080", "requestid": "0"},
                       fin=True)
    events = pump(client, server)
    assert events[0].headers == {"streamtype": "data", "port": "8080",
                                 "requestid": "0", "x-multi": "a\0b"}
    assert events[1] == StreamOpened(3, {"streamtype": "error", "port": "8080",
                                         "requestid": "0"}, True)


def test_header_compression_context_carries_across_blocks():
    client, server = pair()
    headers = {"streamtype": "stdout", "port": "8080", "requestid": "0",
               "x-some-long-header-name": "a value that repeats" * 4}
    sizes = []
    for _ in range(5):
        client.open_stream(headers)
        frame = client.data_to_send()
        sizes.append(len(frame))
        (event,) = server.receive_data(frame)
        assert event.headers == headers
    assert sizes[1] < sizes[0] / 2
    assert sizes[4] <= sizes[1]


def test_reset_by_peer_and_sending_afterwards():
    client, server = pair()
    sid = client.open_stream({"streamtype": "stdout"})
    pump(client, server)
    server.reply(sid, {})
    pump(server, client)
    client.reset(sid)
    assert pump(client, server) == [StreamReset(sid, RstStatus.CANCEL)]
    with pytest.raises(StreamClosedError):
        server.send_data(sid, b"late")
    # A reset of a stream already gone is not answered with another reset.
    client.reset(sid)
    assert pump(client, server) == []
    assert server.data_to_send() == b""


def test_ping_is_echoed_by_the_connection():
    client, server = pair()
    pid = server.ping()
    assert pump(server, client) == [PingReceived(pid)]
    assert pump(client, server) == [PingAcknowledged(pid)]
    pid = client.ping()
    assert pump(client, server) == [PingReceived(pid)]
    assert pump(server, client) == [PingAcknowledged(pid)]
    # An echo of a ping never sent is ignored.
    assert client.receive_data(bytes.fromhex("80 03 00 06 00 00 00 04 00 00 00 09")) == []


def test_go_away():
    client, server = pair()
    sid = client.open_stream({"streamtype": "stdout"})
    pump(client, server)
    server.go_away()
    assert pump(server, client) == [GoAwayReceived(sid, 0)]
    with pytest.raises(SpdyError):
        client.open_stream({})
    # Existing streams keep working.
    server.reply(sid, {})
    server.send_data(sid, b"bye", fin=True)
    assert pump(server, client)[1] == DataReceived(sid, b"bye", True)


def test_syn_stream_after_our_go_away_is_ignored():
    client, server = pair()
    server.go_away()
    server.data_to_send()
    client.open_stream({"streamtype": "stdout"})
    assert pump(client, server) == []
    assert server.data_to_send() == b""


def test_headers_frame_and_fin_on_reply():
    client, server = pair()
    sid = client.open_stream({"a": "1"})
    pump(client, server)
    server.reply(sid, {"status": "ok"}, fin=True)
    assert pump(server, client) == [StreamReplied(sid, {"status": "ok"}, True)]
    client.send_headers(sid, {"trailer": "x"}, fin=True)
    assert pump(client, server) == [HeadersReceived(sid, {"trailer": "x"}, True)]
    assert not client.is_open(sid) and not server.is_open(sid)


# ------------------------------------------------------------- flow control


def _data_payload(frames: bytes) -> tuple[int, int]:
    """(DATA payload bytes, largest DATA frame payload) in a run of frames."""
    total = largest = pos = 0
    while pos < len(frames):
        word0, word1 = struct.unpack_from("!II", frames, pos)
        length = word1 & 0xFFFFFF
        if not word0 & 0x80000000:
            total += length
            largest = max(largest, length)
        pos += 8 + length
    return total, largest


def test_sender_stops_at_64k_until_window_updates_arrive():
    client, server = pair()
    sid = client.open_stream({"streamtype": "stdout"})
    pump(client, server)
    server.reply(sid, {})
    blob = bytes(range(256)) * (200 * KIB // 256)
    server.send_data(sid, blob, fin=True)
    assert server.pending_bytes(sid) == len(blob) - 64 * KIB
    received = bytearray()
    rounds = 0
    while True:
        out = server.data_to_send()
        sent, largest = _data_payload(out)
        assert sent <= 64 * KIB and largest <= 16 * KIB
        events = client.receive_data(out)
        received += b"".join(e.data for e in events if isinstance(e, DataReceived))
        if any(isinstance(e, DataReceived) and e.fin for e in events):
            break
        updates = client.data_to_send()
        assert updates, "the receiver must grant more window"
        events = server.receive_data(updates)
        assert {e.stream_id for e in events if isinstance(e, WindowUpdated)} == {0, sid}
        rounds += 1
        assert rounds < 20
    assert bytes(received) == blob
    assert rounds >= 3
    assert server.pending_bytes() == 0


def test_peer_initial_window_setting_is_honoured():
    client, server = pair()
    sid = client.open_stream({"streamtype": "stdout"})
    pump(client, server)
    server.reply(sid, {})
    client.send_settings({Setting.INITIAL_WINDOW_SIZE: 1000})
    events = pump(client, server)
    assert events == [SettingsReceived({7: 1000})]
    server.send_data(sid, b"x" * 5000)
    assert _data_payload(server.data_to_send())[0] == 1000
    assert server.pending_bytes(sid) == 4000
    # A new stream starts with the peer's new initial window.
    sid2 = client.open_stream({"streamtype": "stderr"})
    pump(client, server)
    server.reply(sid2, {})
    server.send_data(sid2, b"y" * 3000)
    assert _data_payload(server.data_to_send())[0] == 1000


def test_window_shrunk_below_what_was_sent_goes_negative():
    client, server = pair()
    sid = client.open_stream({})
    pump(client, server)
    server.reply(sid, {})
    server.send_data(sid, b"x" * 60 * KIB)
    server.data_to_send()
    client.send_settings({Setting.INITIAL_WINDOW_SIZE: 16 * KIB})
    pump(client, server)
    server.send_data(sid, b"more")
    assert server.pending_bytes(sid) == 4  # window is now 16K - 60K < 0


def test_peer_without_flow_control_gets_everything_at_once():
    client, server = pair(peer_flow_control=False)
    sid = client.open_stream({"streamtype": "stdout"})
    pump(client, server)
    server.reply(sid, {})
    server.send_data(sid, b"z" * 200 * KIB, fin=True)
    assert server.pending_bytes() == 0
    out = server.data_to_send()
    assert _data_payload(out) == (200 * KIB, 16 * KIB)


def test_receiver_sends_window_updates_automatically():
    client, server = pair()
    sid = client.open_stream({})
    pump(client, server)
    server.reply(sid, {})
    pump(server, client)
    client.send_data(sid, b"a" * 40 * KIB)  # 16 + 16 + 8 KiB frames
    pump(client, server)
    # Half a window (32 KiB) consumed: both windows are re-opened by that much.
    assert server.data_to_send() == bytes.fromhex(
        "80 03 00 09 00 00 00 08 00 00 00 00 00 00 80 00"    # session
        "80 03 00 09 00 00 00 08 00 00 00 01 00 00 80 00")   # stream 1
    client.send_data(sid, b"b" * 24 * KIB)
    pump(client, server)
    assert server.data_to_send() == bytes.fromhex(
        "80 03 00 09 00 00 00 08 00 00 00 00 00 00 80 00"
        "80 03 00 09 00 00 00 08 00 00 00 01 00 00 80 00")


# ------------------------------------------------------ robustness and errors


def test_byte_at_a_time_gives_the_same_events():
    client, server = pair()
    client.open_stream({"streamtype": "stdin", "port": "22"})
    client.ping()
    wire = client.data_to_send()
    whole = SpdyConnection(client=False).receive_data(wire)
    events = []
    for i in range(len(wire)):
        events += server.receive_data(wire[i:i + 1])
    assert events == whole and len(events) == 2
    server.reply(1, {})
    client.receive_data(server.data_to_send())
    client.send_data(1, b"payload", fin=True)
    wire = client.data_to_send()
    events = []
    for i in range(len(wire)):
        events += server.receive_data(wire[i:i + 1])
    assert events == [DataReceived(1, b"payload", True)]


@pytest.mark.parametrize("wire, needle", [
    ("80 02 00 06 00 00 00 04 00 00 00 01", "version 2"),        # SPDY/2 PING
    ("80 04 00 06 00 00 00 04 00 00 00 01", "version 4"),
    ("80 03 00 06 00 00 00 05 00 00 00 01 00", "PING length"),
    ("80 03 00 03 00 00 00 04 00 00 00 01", "RST_STREAM length"),
    ("80 03 00 07 00 00 00 04 00 00 00 01", "GOAWAY length"),
    ("80 03 00 09 00 00 00 0c 00 00 00 01 00 00 00 01 00 00 00 00", "WINDOW_UPDATE length"),
    ("80 03 00 04 00 00 00 08 00 00 00 02 00 00 00 07", "SETTINGS length"),
    ("00 00 00 00 00 00 00 01 41", "stream 0"),
    ("80 03 00 01 00 00 00 06 00 00 00 01 00 00", "shorter than 10"),
    ("80 03 00 01 00 00 00 0e 00 00 00 01 00 00 00 00 00 00 de ad be ef", "inflate"),
])
def test_malformed_input_raises_protocol_error(wire, needle):
    server = SpdyConnection(client=False)
    with pytest.raises(ProtocolError, match=needle):
        server.receive_data(bytes.fromhex(wire))
    with pytest.raises(ProtocolError):  # the session stays dead
        server.receive_data(b"")


def test_bad_header_blocks_are_session_errors():
    peer = RawPeer()
    server = SpdyConnection(client=False)
    with pytest.raises(ProtocolError, match="upper case"):
        server.receive_data(peer.syn_stream(1, [(b"StreamType", b"stdout")]))
    server = SpdyConnection(client=False)
    peer = RawPeer()
    with pytest.raises(ProtocolError, match="twice"):
        server.receive_data(peer.syn_stream(1, [(b"a", b"1"), (b"a", b"2")]))


def test_syn_stream_checks_ids():
    peer = RawPeer()
    server = SpdyConnection(client=False)
    assert server.receive_data(peer.syn_stream(5, [(b"a", b"b")]))[0].stream_id == 5
    # Even id from a client: a stream error, answered with RST PROTOCOL_ERROR.
    assert server.receive_data(peer.syn_stream(6, [])) == [
        StreamReset(6, RstStatus.PROTOCOL_ERROR, remote=False)]
    assert server.data_to_send() == bytes.fromhex(
        "80 03 00 03 00 00 00 08 00 00 00 06 00 00 00 01")
    # The same id again: stream error; a lower id: session error.
    assert server.receive_data(peer.syn_stream(5, [])) == [
        StreamReset(5, RstStatus.PROTOCOL_ERROR, remote=False)]
    with pytest.raises(ProtocolError, match="after 5"):
        server.receive_data(peer.syn_stream(3, []))


def test_data_for_unknown_stream_queues_rst_invalid_stream():
    server = SpdyConnection(client=False)
    frame = bytes.fromhex("00 00 00 09 00 00 00 03 61 62 63")
    assert server.receive_data(frame + frame) == []
    # One RST for the run (coalesced), status INVALID_STREAM (2).
    assert server.data_to_send() == bytes.fromhex(
        "80 03 00 03 00 00 00 08 00 00 00 09 00 00 00 02")


def test_data_after_fin_is_answered_stream_already_closed():
    peer = RawPeer()
    server = SpdyConnection(client=False)
    server.receive_data(peer.syn_stream(1, [(b"streamtype", b"stdin")], flags=spdy.FLAG_FIN))
    events = server.receive_data(bytes.fromhex("00 00 00 01 00 00 00 01 78"))
    assert events == [StreamReset(1, RstStatus.STREAM_ALREADY_CLOSED, remote=False)]
    assert server.data_to_send() == bytes.fromhex(
        "80 03 00 03 00 00 00 08 00 00 00 01 00 00 00 09")


def test_unknown_control_frames_are_ignored():
    server = SpdyConnection(client=False)
    unknown = bytes.fromhex("80 03 00 0a 00 00 00 03 01 02 03")   # CREDENTIAL-ish
    noop = bytes.fromhex("80 03 00 05 00 00 00 00")
    ping = bytes.fromhex("80 03 00 06 00 00 00 04 00 00 00 07")
    assert server.receive_data(unknown + noop + ping) == [PingReceived(7)]
    assert server.data_to_send() == ping


def test_header_names_are_lowercased_and_checked_on_send():
    assert spdy.decode_header_block(spdy.encode_header_block({"StreamType": "x"})) == {
        "streamtype": "x"}
    with pytest.raises(ValueError):
        spdy.encode_header_block({"Port": "1", "port": "2"})
    with pytest.raises(ValueError):
        spdy.encode_header_block({"": "1"})


def test_local_misuse():
    client, server = pair()
    with pytest.raises(StreamClosedError):
        client.send_data(1, b"x")
    sid = client.open_stream({}, fin=True)
    with pytest.raises(StreamClosedError):
        client.send_data(sid, b"x")
    with pytest.raises(ValueError):
        client.open_stream({}, priority=8)
    pump(client, server)
    server.reply(sid, {})
    with pytest.raises(SpdyError):
        server.reply(sid, {})


def test_data_before_syn_reply_is_a_stream_error():
    client = SpdyConnection(client=True)
    sid = client.open_stream({"streamtype": "stdout"})
    client.data_to_send()
    events = client.receive_data(bytes.fromhex("00 00 00 01 00 00 00 01 78"))
    assert events == [StreamReset(sid, RstStatus.PROTOCOL_ERROR, remote=False)]
    assert not client.is_open(sid)


def test_window_overflow():
    client, server = pair()
    sid = client.open_stream({})
    pump(client, server)
    # Stream window past 2^31-1: RST FLOW_CONTROL_ERROR for that stream only.
    events = server.receive_data(bytes.fromhex("80 03 00 09 00 00 00 08 00 00 00 01 7f ff ff ff"))
    assert events == [StreamReset(sid, RstStatus.FLOW_CONTROL_ERROR, remote=False)]
    # Session window past 2^31-1: the session is broken.
    with pytest.raises(ProtocolError, match="session window"):
        server.receive_data(bytes.fromhex("80 03 00 09 00 00 00 08 00 00 00 00 7f ff ff ff"))
