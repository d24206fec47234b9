package cluster

import (
	"encoding/binary"
	"testing"
)

// ipv4TCP builds an IPv4 TCP packet for the parser's tests.
func ipv4TCP(sport, dport uint16, ipOpts, tcpOpts int, payload string) []byte {
	ihl, off := 20+ipOpts, 20+tcpOpts
	p := make([]byte, ihl+off+len(payload))
	p[0] = 0x40 | byte(ihl/4)
	binary.BigEndian.PutUint16(p[2:4], uint16(len(p)))
	p[9] = 6
	copy(p[12:16], []byte{10, 213, 0, 1})
	copy(p[16:20], []byte{10, 213, 0, 2})
	t := p[ihl:]
	binary.BigEndian.PutUint16(t[0:2], sport)
	binary.BigEndian.PutUint16(t[2:4], dport)
	t[12] = byte(off/4) << 4
	copy(t[off:], payload)
	return p
}

func TestParseIPv4TCP(t *testing.T) {
	fragment := ipv4TCP(1, 2, 0, 0, "x")
	binary.BigEndian.PutUint16(fragment[6:8], 3)
	udp := ipv4TCP(1, 2, 0, 0, "x")
	udp[9] = 17
	longer := append(ipv4TCP(1, 2, 0, 0, "abc"), "trailer"...) // Ethernet padding
	bigTCP := ipv4TCP(1, 2, 0, 0, "abc")
	binary.BigEndian.PutUint16(bigTCP[2:4], 0)
	for _, tc := range []struct {
		name    string
		p       []byte
		ok      bool
		payload string
	}{
		{"plain", ipv4TCP(4444, 5555, 0, 0, "hello"), true, "hello"},
		{"options", ipv4TCP(4444, 5555, 8, 12, "hello"), true, "hello"},
		{"no payload", ipv4TCP(4444, 5555, 0, 0, ""), true, ""},
		{"padding after the packet", longer, true, "abc"},
		{"big TCP (total length 0)", bigTCP, true, "abc"},
		{"later fragment", fragment, false, ""},
		{"udp", udp, false, ""},
		{"ipv6", append([]byte{0x60}, make([]byte, 60)...), false, ""},
		{"short", ipv4TCP(1, 2, 0, 0, "")[:30], false, ""},
		{"empty", nil, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seg, ok := parseIPv4TCP(tc.p)
			if ok != tc.ok || string(seg.payload) != tc.payload {
				t.Fatalf("parseIPv4TCP = %q, %v; want %q, %v", seg.payload, ok, tc.payload, tc.ok)
			}
			if ok && tc.name == "plain" && (seg.key.sport != 4444 || seg.key.dport != 5555) {
				t.Errorf("ports %d -> %d, want 4444 -> 5555", seg.key.sport, seg.key.dport)
			}
		})
	}
}

// FuzzParseIPv4TCP: captured packets are untrusted bytes; the parser must
// never panic and a payload it returns lies inside the packet.
func FuzzParseIPv4TCP(f *testing.F) {
	f.Add(ipv4TCP(4444, 5555, 0, 0, "hello"))
	f.Add(ipv4TCP(4444, 5555, 40, 40, "hello"))
	f.Add([]byte{0x4f, 0, 0, 0})
	f.Add([]byte{0x45, 0, 0, 20, 0, 0, 0, 0, 0, 6})
	f.Fuzz(func(t *testing.T, p []byte) {
		seg, ok := parseIPv4TCP(p)
		if !ok {
			return
		}
		if len(seg.payload) > len(p) {
			t.Fatalf("payload of %d bytes from a %d-byte packet", len(seg.payload), len(p))
		}
	})
}

// TestCaptureScansFlows feeds segments straight to the scanner: a needle
// split across two segments of one direction is found, one split across
// two connections is not, and the byte counts follow the direction.
func TestCaptureScansFlows(t *testing.T) {
	c := &Capture{port: 4567, flows: map[flowKey][]byte{}, needles: [][]byte{[]byte("NEEDLE"), []byte("SPLIT")}, maxTail: 5}
	c.res.Found = make([]bool, 2)
	c.packet(ipv4TCP(40000, 4567, 0, 0, "xxxNEE"))
	c.packet(ipv4TCP(40001, 4567, 0, 0, "SPL")) // another connection
	c.packet(ipv4TCP(40000, 4567, 0, 0, "DLEyyy"))
	c.packet(ipv4TCP(4567, 40000, 0, 0, "IT"))   // the other direction
	c.packet(ipv4TCP(1234, 5678, 0, 0, "SPLIT")) // another port
	if !c.res.Found[0] || c.res.Found[1] {
		t.Errorf("found %v, want [true false]", c.res.Found)
	}
	if c.res.ToPort != 15 || c.res.FromPort != 2 || c.res.Packets != 4 {
		t.Errorf("to %d from %d packets %d, want 15, 2, 4", c.res.ToPort, c.res.FromPort, c.res.Packets)
	}
}
