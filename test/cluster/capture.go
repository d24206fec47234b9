package cluster

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// A Capture watches the TCP payload of one port crossing the link, as the
// kernel hands it to one veth end: both directions, every connection,
// from the real link traffic (an AF_PACKET socket bound to the veth inside
// the side's namespace), not from a proxy in the path. It keeps nothing of
// the stream: each connection direction keeps only the last len(needle)-1
// bytes, enough to find a needle that straddles two segments.
//
// What it sees is what an eavesdropper on the cable would see. The kernel
// reports the packets it could not queue to the socket (CaptureResult
// Dropped): a capture that dropped packets proves nothing about what it
// did not find.
type Capture struct {
	fd      int
	wakeR   int // read end of the stop pipe, polled with fd
	wakeW   int
	port    uint16
	g       errgroup.Group
	stopCtx func() bool
	once    sync.Once

	mu  sync.Mutex
	res CaptureResult
	// flows keeps each connection direction's tail; the needles' found
	// flags are in res.Found.
	flows   map[flowKey][]byte
	needles [][]byte
	maxTail int
}

// CaptureResult is what a Capture saw.
type CaptureResult struct {
	// ToPort and FromPort count the TCP payload bytes sent to the port and
	// from it (retransmissions included, headers not).
	ToPort, FromPort int64
	// Packets counts the TCP segments of the port that carried payload.
	Packets int64
	// Found[i] reports whether needle i appeared in one connection
	// direction's payload.
	Found []bool
	// Dropped is the number of packets the kernel could not queue to the
	// capture socket (all ports); Truncated counts packets larger than the
	// capture buffer. Both must be 0 for a "not found" to mean anything.
	Dropped   uint32
	Truncated int64
}

type flowKey struct {
	src, dst [4]byte
	sport    uint16
	dport    uint16
}

// captureBuf holds one packet: a GSO/GRO segment on a veth is at most
// 64 KiB of IP packet.
const captureBuf = 256 << 10

// captureRcvBuf is the socket's receive queue: a few seconds of a
// 100 Mbit/s link, so a busy 2-core machine does not drop packets.
const captureRcvBuf = 64 << 20

// StartCapture starts watching TCP port on side's end of the link for the
// needles. Stop ends it and reports; the capture also ends when ctx does.
func (l *Link) StartCapture(ctx context.Context, side, port int, needles ...[]byte) (*Capture, error) {
	if port <= 0 || port > 0xffff {
		return nil, fmt.Errorf("cluster: capture port %d out of range", port)
	}
	c := &Capture{fd: -1, wakeR: -1, wakeW: -1, port: uint16(port), flows: map[flowKey][]byte{}}
	for _, n := range needles {
		if len(n) == 0 {
			return nil, errors.New("cluster: capture: empty needle")
		}
		c.needles = append(c.needles, bytes.Clone(n))
		c.maxTail = max(c.maxTail, len(n)-1)
	}
	c.res.Found = make([]bool, len(needles))
	err := l.inNamespace(side, func() error {
		ifi, err := net.InterfaceByName(linkDev)
		if err != nil {
			return fmt.Errorf("cluster: capture: %w", err)
		}
		// Protocol 0 receives nothing until bind: no packet of another
		// interface can slip in before the socket is bound to the veth.
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("cluster: capture socket: %w", err)
		}
		c.fd = fd
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, captureRcvBuf); err != nil {
			return fmt.Errorf("cluster: capture receive buffer: %w", err)
		}
		// ETH_P_ALL: outgoing packets reach only all-protocol taps.
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			return fmt.Errorf("cluster: capture bind to %s: %w", linkDev, err)
		}
		return nil
	})
	if err != nil {
		c.closeFDs()
		return nil, err
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		c.closeFDs()
		return nil, fmt.Errorf("cluster: capture stop pipe: %w", err)
	}
	c.wakeR, c.wakeW = p[0], p[1]
	c.stopCtx = context.AfterFunc(ctx, c.wake)
	c.g.Go(c.loop)
	return c, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (c *Capture) wake() {
	c.once.Do(func() { _, _ = unix.Write(c.wakeW, []byte{1}) })
}

// loop reads packets until woken, then reads what is already queued and
// returns.
func (c *Capture) loop() error {
	buf := make([]byte, captureBuf)
	fds := []unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLIN}, {Fd: int32(c.wakeR), Events: unix.POLLIN}}
	for {
		if _, err := unix.Poll(fds, -1); err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return fmt.Errorf("cluster: capture poll: %w", err)
		}
		if err := c.drain(buf); err != nil {
			return err
		}
		if fds[1].Revents != 0 {
			return nil
		}
	}
}

// drain reads every packet queued on the socket.
func (c *Capture) drain(buf []byte) error {
	for {
		n, from, err := unix.Recvfrom(c.fd, buf, unix.MSG_DONTWAIT|unix.MSG_TRUNC)
		switch {
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EWOULDBLOCK):
			return nil
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return fmt.Errorf("cluster: capture read: %w", err)
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Protocol != htons(unix.ETH_P_IP) {
			continue
		}
		if n > len(buf) {
			c.mu.Lock()
			c.res.Truncated++
			c.mu.Unlock()
			n = len(buf)
		}
		c.packet(buf[:n])
	}
}

// tcpSegment is the part of an IPv4 TCP packet a capture looks at.
type tcpSegment struct {
	key     flowKey
	payload []byte
}

// parseIPv4TCP extracts a TCP segment from an IPv4 packet; ok is false
// for anything else (or a malformed packet).
func parseIPv4TCP(p []byte) (seg tcpSegment, ok bool) {
	if len(p) < 20 || p[0]>>4 != 4 {
		return seg, false
	}
	ihl := int(p[0]&0x0f) * 4
	if ihl < 20 || len(p) < ihl || p[9] != unix.IPPROTO_TCP {
		return seg, false
	}
	// A GSO packet larger than 64 KiB ("BIG TCP") has total length 0.
	if tot := int(binary.BigEndian.Uint16(p[2:4])); tot != 0 {
		if tot < ihl || tot > len(p) {
			return seg, false
		}
		p = p[:tot]
	}
	if binary.BigEndian.Uint16(p[6:8])&0x1fff != 0 {
		return seg, false // a later fragment: no TCP header
	}
	copy(seg.key.src[:], p[12:16])
	copy(seg.key.dst[:], p[16:20])
	t := p[ihl:]
	if len(t) < 20 {
		return seg, false
	}
	off := int(t[12]>>4) * 4
	if off < 20 || off > len(t) {
		return seg, false
	}
	seg.key.sport = binary.BigEndian.Uint16(t[0:2])
	seg.key.dport = binary.BigEndian.Uint16(t[2:4])
	seg.payload = t[off:]
	return seg, true
}

func (c *Capture) packet(p []byte) {
	seg, ok := parseIPv4TCP(p)
	if !ok || len(seg.payload) == 0 || (seg.key.sport != c.port && seg.key.dport != c.port) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.res.Packets++
	if seg.key.dport == c.port {
		c.res.ToPort += int64(len(seg.payload))
	} else {
		c.res.FromPort += int64(len(seg.payload))
	}
	if len(c.needles) == 0 {
		return
	}
	buf := append(c.flows[seg.key], seg.payload...)
	for i, n := range c.needles {
		if !c.res.Found[i] && bytes.Contains(buf, n) {
			c.res.Found[i] = true
		}
	}
	if len(buf) > c.maxTail {
		buf = buf[len(buf)-c.maxTail:]
	}
	c.flows[seg.key] = append(c.flows[seg.key][:0:0], buf...)
}

// Stop ends the capture (after reading the packets already queued) and
// reports what it saw. It may be called more than once.
func (c *Capture) Stop() (CaptureResult, error) {
	c.wake()
	err := c.g.Wait()
	c.stopCtx()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fd >= 0 {
		st, serr := unix.GetsockoptTpacketStats(c.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
		if serr != nil {
			err = errors.Join(err, fmt.Errorf("cluster: capture statistics: %w", serr))
		} else {
			c.res.Dropped += st.Drops
		}
	}
	c.closeFDs()
	res := c.res
	res.Found = append([]bool(nil), c.res.Found...)
	return res, err
}

func (c *Capture) closeFDs() {
	for _, fd := range []*int{&c.fd, &c.wakeR, &c.wakeW} {
		if *fd >= 0 {
			unix.Close(*fd)
			*fd = -1
		}
	}
}
