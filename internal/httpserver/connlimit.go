package httpserver

import (
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// connLimiter caps the connections a listener holds open at once, like
// netutil.LimitListener, but neither idle keep-alive connections nor one address's
// half-sent requests can keep other clients out:
//
//   - One peer address (an IPv4 address, or an IPv6 /64) holds at most perAddress
//     connections; one more from it is closed at once (trusted proxies are exempt).
//   - At the cap, a new connection makes room by closing, in this order: the
//     connection idle longest (idle for minEvictableIdle at least: a client reconnects
//     for its next request, as after the idle timeout); else the oldest connection
//     still reading its first request (or TLS handshake) for over slowHeaderAge — near
//     the cap the header timeout is that short; else the oldest such connection of the
//     address holding the most connections, when it holds more than the newcomer's
//     address plus one. Otherwise the new connection waits for a slot.
//
// Connections reading a request they have begun after the first, or writing a response,
// are never closed for room; one that sends nothing holds its slot only until
// tokenServer.readHeaderTimeout (the slow-loris bound).
type connLimiter struct {
	net.Listener
	max, perAddress int
	// exempt reports the peers (trusted proxies) not limited per address, nor closed
	// for holding the most connections.
	exempt func(netip.Addr) bool

	mu sync.Mutex
	// taken counts the slots held by open connections.
	taken  int
	conns  map[*limitedConn]struct{}
	byPeer map[netip.Addr]int
	// freed is signalled (without blocking) whenever a slot is released or a
	// connection becomes idle, so a full Accept looks again.
	freed chan struct{}
	done  chan struct{}
	once  sync.Once
}

type limitedConn struct {
	net.Conn
	l *connLimiter
	// peer is the connection's key in byPeer; accepted when it was accepted.
	peer     netip.Addr
	accepted time.Time
	// state is the last state net/http reported (StateNew until a request was
	// read), idleSince when it went idle; guarded by l.mu.
	state     http.ConnState
	idleSince time.Time
	closeOnce sync.Once
}

const (
	// minEvictableIdle is how long a connection must have been idle before a new
	// client may take its slot.
	minEvictableIdle = 500 * time.Millisecond
	// slowHeaderAge is the header timeout at the cap: a connection that has not sent
	// its first request's headers within it makes room for a new one.
	slowHeaderAge = time.Second
)

func newConnLimiter(ln net.Listener, max, perAddress int, exempt func(netip.Addr) bool) *connLimiter {
	if exempt == nil {
		exempt = func(netip.Addr) bool { return false }
	}
	return &connLimiter{Listener: ln, max: max, perAddress: perAddress, exempt: exempt,
		conns: make(map[*limitedConn]struct{}), byPeer: make(map[netip.Addr]int),
		freed: make(chan struct{}, 1), done: make(chan struct{})}
}

// peerKey is the address a connection counts against: the peer's IPv4 address, or
// the /64 of its IPv6 address (one host's usual share); the zero Addr, which is not
// limited, for a trusted proxy (and a peer that has no IP address).
func (l *connLimiter) peerKey(a net.Addr) netip.Addr {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	addr := ap.Addr().Unmap().WithZone("")
	switch {
	case l.exempt(addr):
		return netip.Addr{}
	case addr.Is6():
		p, _ := addr.Prefix(64)
		return p.Addr()
	}
	return addr
}

// Accept accepts a connection, then waits for a free slot for it (see connLimiter).
func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		peer := l.peerKey(c.RemoteAddr())
		if lc := l.admit(c, peer); lc != nil {
			return lc, nil
		}
	}
}

// admit waits until c has a slot and returns it tracked; nil when c was closed (its
// address is over its share, or the listener closed).
func (l *connLimiter) admit(c net.Conn, peer netip.Addr) *limitedConn {
	for {
		ok, refuse := l.reserve(peer)
		if refuse {
			_ = c.Close()
			return nil
		}
		if ok {
			break
		}
		select {
		case <-l.freed:
		case <-time.After(minEvictableIdle / 4): // a connection may have aged enough
		case <-l.done:
			_ = c.Close()
			return nil
		}
	}
	lc := &limitedConn{Conn: c, l: l, peer: peer, accepted: time.Now(), state: http.StateNew}
	l.mu.Lock()
	l.conns[lc] = struct{}{}
	l.mu.Unlock()
	return lc
}

// reserve takes a slot for a connection of peer if one is free, or refuses one over
// its address's share; else it closes a connection to make room (whose slot is free
// once it has closed, then freed is signalled), or finds none to close.
func (l *connLimiter) reserve(peer netip.Addr) (ok, refuse bool) {
	l.mu.Lock()
	if peer.IsValid() && l.byPeer[peer] >= l.perAddress {
		l.mu.Unlock()
		return false, true
	}
	if l.taken < l.max {
		l.taken++
		l.byPeer[peer]++
		l.mu.Unlock()
		return true, false
	}
	victim := l.victim(peer, time.Now())
	if victim != nil {
		victim.state = http.StateClosed // chosen once
	}
	l.mu.Unlock()
	if victim != nil {
		_ = victim.Close()
	}
	return false, false
}

// victim is the connection to close for a newcomer of peer, nil when none may be.
func (l *connLimiter) victim(peer netip.Addr, now time.Time) *limitedConn {
	var idle, slow, top *limitedConn
	var hog netip.Addr
	most := 0
	for p, n := range l.byPeer {
		if p.IsValid() && n > most {
			hog, most = p, n
		}
	}
	mine := 0
	if peer.IsValid() {
		mine = l.byPeer[peer]
	}
	hogging := most > mine+1
	for c := range l.conns {
		switch c.state {
		case http.StateIdle:
			// Only a connection idle for a while: one that has just answered may
			// already hold its client's next request, unread, which closing would
			// lose.
			if now.Sub(c.idleSince) >= minEvictableIdle && (idle == nil || c.idleSince.Before(idle.idleSince)) {
				idle = c
			}
		case http.StateNew:
			if now.Sub(c.accepted) >= slowHeaderAge && (slow == nil || c.accepted.Before(slow.accepted)) {
				slow = c
			}
			if hogging && c.peer == hog && (top == nil || c.accepted.Before(top.accepted)) {
				top = c
			}
		}
	}
	switch {
	case idle != nil:
		return idle
	case slow != nil:
		return slow
	}
	return top
}

// release frees a connection's slot.
func (l *connLimiter) release(c *limitedConn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.taken--
	if l.byPeer[c.peer]--; l.byPeer[c.peer] <= 0 {
		delete(l.byPeer, c.peer)
	}
	l.mu.Unlock()
	l.signal()
}

func (l *connLimiter) signal() {
	select {
	case l.freed <- struct{}{}:
	default:
	}
}

// connState is the http.Server's ConnState hook: it records each connection's state.
func (l *connLimiter) connState(c net.Conn, state http.ConnState) {
	if nc, ok := c.(interface{ NetConn() net.Conn }); ok { // TLS
		c = nc.NetConn()
	}
	lc, ok := c.(*limitedConn)
	if !ok {
		return
	}
	l.mu.Lock()
	if _, open := l.conns[lc]; !open || lc.state == http.StateClosed {
		l.mu.Unlock()
		return
	}
	lc.state = state
	if state == http.StateIdle {
		lc.idleSince = time.Now()
	}
	l.mu.Unlock()
	if state == http.StateIdle {
		l.signal()
	}
}

func (l *connLimiter) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() { c.l.release(c) })
	return err
}
