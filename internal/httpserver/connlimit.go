package httpserver

import (
	"errors"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// connLimiter caps the connections a listener holds open at once, like
// netutil.LimitListener, but neither idle keep-alive connections nor one address's
// stalled requests can keep other clients out:
//
//   - Below the cap a new connection gets a slot at once, however many arrive
//     together.
//   - One peer address holds at most perAddress connections; one more from it is
//     closed at once. Trusted proxies are exempt.
//   - At the cap, a new connection makes room by closing, in this order: the oldest
//     stalled connection — still reading its first request (or TLS handshake), or busy
//     with one request (a body that does not come), for over slowAge: near the cap
//     that is the read timeout; else the connection idle longest (idle for
//     minEvictableIdle at least) of the newcomer's address or of one that holds more
//     connections than it; else the oldest connection reading its first request of the address
//     holding the most connections, when that is more than the newcomer's address
//     plus one.
//   - Otherwise the new connection waits for a slot without holding up the others
//     (each waits on its own); one whose address already holds its fair share of the
//     cap is closed instead.
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
	// waiting counts the accepted connections waiting for a slot, waitingByPeer
	// them by address (guarded by mu).
	waiting       atomic.Int64
	waitingByPeer map[netip.Addr]int
	// reserving, when set (tests only), is called by reserve, which may search the
	// open connections for one to close (O(open connections)): only a waiting
	// connection reserves, never the accept loop that serves everyone.
	reserving func()
	// freed is signalled (without blocking) whenever a slot is released or a
	// connection changes state, so waiting connections look again.
	freed chan struct{}

	admitted  chan net.Conn
	errs      chan error
	done      chan struct{}
	startOnce sync.Once
	closeOnce sync.Once
}

type limitedConn struct {
	net.Conn
	l *connLimiter
	// peer is the connection's key in byPeer; accepted when it was accepted.
	peer     netip.Addr
	accepted time.Time
	// state is the last state net/http reported (StateNew until a request was read),
	// since when it has been in it; guarded by l.mu.
	state     http.ConnState
	since     time.Time
	closeOnce sync.Once
}

const (
	// minEvictableIdle is how long a connection must have been idle before a new
	// client may take its slot.
	minEvictableIdle = 500 * time.Millisecond
	// slowAge is the read timeout at the cap: a connection that has not sent its first
	// request's headers, or a request's body, within it makes room for a new one.
	slowAge = time.Second
)

func newConnLimiter(ln net.Listener, max, perAddress int, exempt func(netip.Addr) bool) *connLimiter {
	if exempt == nil {
		exempt = func(netip.Addr) bool { return false }
	}
	return &connLimiter{Listener: ln, max: max, perAddress: perAddress, exempt: exempt,
		conns: make(map[*limitedConn]struct{}), byPeer: make(map[netip.Addr]int), waitingByPeer: make(map[netip.Addr]int),
		freed: make(chan struct{}, 1), admitted: make(chan net.Conn), errs: make(chan error),
		done: make(chan struct{})}
}

// peerKey is the address a connection counts against: the peer's IP address (a whole
// IPv6 address: the pods of a node often share one /64); the zero Addr, which is not
// limited, for a trusted proxy (and a peer that has no IP address).
func (l *connLimiter) peerKey(a net.Addr) netip.Addr {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	addr := ap.Addr().Unmap().WithZone("")
	if l.exempt(addr) {
		return netip.Addr{}
	}
	return addr
}

// Accept returns the next connection that has a slot (see connLimiter).
func (l *connLimiter) Accept() (net.Conn, error) {
	l.startOnce.Do(func() { go l.acceptLoop() })
	select {
	case c := <-l.admitted:
		return c, nil
	case err := <-l.errs:
		return nil, err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// acceptLoop accepts connections as they come. One that gets a free slot at once is
// handed to the server; at the cap, one waits on its own (a connection may be closed
// to make room for it), so that it never holds up the next.
func (l *connLimiter) acceptLoop() {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			select {
			case l.errs <- err:
			case <-l.done:
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if !errors.Is(err, net.ErrClosed) {
				continue // http.Server backs off and calls Accept again
			}
			return
		}
		peer := l.peerKey(c.RemoteAddr())
		// Only the O(1) step here: the search for a connection to close (O(open
		// connections)) is left to the waiting goroutine, or a flood of connections at
		// the cap would hold up the acceptance of everyone's.
		lc, wait := l.arrive(c, peer)
		switch {
		case lc != nil:
			// It holds a slot: the handing over is bounded by the cap.
			go l.handOver(lc)
		case !wait:
			_ = c.Close()
		default:
			go func() {
				defer l.stopWaiting(peer)
				if lc := l.admit(c, peer); lc != nil {
					l.handOver(lc)
				}
			}()
		}
	}
}

// arrive gives c a free slot and returns it tracked, or, at the cap, counts it as
// waiting (wait; see startWaiting); neither when c is to be closed (its address
// holds its share, or too many are waiting). In O(1), under one lock.
func (l *connLimiter) arrive(c net.Conn, peer netip.Addr) (_ *limitedConn, wait bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if peer.IsValid() && l.byPeer[peer] >= l.perAddress {
		return nil, false
	}
	if l.taken < l.max {
		l.taken++
		l.byPeer[peer]++
		return l.trackLocked(c, peer), false
	}
	return nil, l.startWaitingLocked(peer)
}

// handOver gives the server a connection that holds a slot.
func (l *connLimiter) handOver(lc *limitedConn) {
	select {
	case l.admitted <- lc:
	case <-l.done:
		_ = lc.Close()
	}
}

// maxWaitingPerAddress bounds the connections of one address waiting for a slot (at
// the cap; below it no connection waits).
const maxWaitingPerAddress = 4

// startWaitingLocked (l.mu held) counts a connection of peer as waiting, unless as
// many are waiting as there are slots, or as maxWaitingPerAddress of its address
// (trusted proxies: any).
func (l *connLimiter) startWaitingLocked(peer netip.Addr) bool {
	if l.waiting.Load() >= int64(l.max) || (peer.IsValid() && l.waitingByPeer[peer] >= maxWaitingPerAddress) {
		return false
	}
	l.waiting.Add(1)
	l.waitingByPeer[peer]++
	return true
}

func (l *connLimiter) stopWaiting(peer netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.waiting.Add(-1)
	if l.waitingByPeer[peer]--; l.waitingByPeer[peer] <= 0 {
		delete(l.waitingByPeer, peer)
	}
}

// admit waits until c, which found no free slot, has one (reserve may close a
// connection to make room, and take its slot), and returns it tracked; nil when c
// was closed (its address is over its share, or the listener closed).
func (l *connLimiter) admit(c net.Conn, peer netip.Addr) *limitedConn {
	for {
		ok, refuse := l.reserve(peer)
		if refuse {
			_ = c.Close()
			return nil
		}
		if ok {
			l.mu.Lock()
			defer l.mu.Unlock()
			return l.trackLocked(c, peer)
		}
		select {
		case <-l.freed:
		case <-time.After(minEvictableIdle / 4): // a connection may have aged enough
		case <-l.done:
			_ = c.Close()
			return nil
		}
	}
}

// trackLocked (l.mu held) records a connection that holds a slot.
func (l *connLimiter) trackLocked(c net.Conn, peer netip.Addr) *limitedConn {
	now := time.Now()
	lc := &limitedConn{Conn: c, l: l, peer: peer, accepted: now, state: http.StateNew, since: now}
	l.conns[lc] = struct{}{}
	return lc
}

// reserve takes a slot for a connection of peer if one is free, or refuses one over
// its address's share (or, at the cap, its fair share); else it closes a connection to
// make room, whose slot it takes, or finds none to close.
func (l *connLimiter) reserve(peer netip.Addr) (ok, refuse bool) {
	if l.reserving != nil {
		l.reserving()
	}
	l.mu.Lock()
	mine := 0
	if peer.IsValid() {
		mine = l.byPeer[peer]
	}
	if peer.IsValid() && mine >= l.perAddress {
		l.mu.Unlock()
		return false, true
	}
	if l.taken < l.max {
		l.taken++
		l.byPeer[peer]++
		l.mu.Unlock()
		return true, false
	}
	victim, ownIdle := l.victim(peer, mine, time.Now())
	if victim != nil {
		// The newcomer takes the victim's slot at once (release, when the victim
		// closes, leaves the slot alone): a connection waiting for one must not take
		// it first, making the newcomer close another.
		victim.state = http.StateClosed // chosen once
		delete(l.conns, victim)
		if l.byPeer[victim.peer]--; l.byPeer[victim.peer] <= 0 {
			delete(l.byPeer, victim.peer)
		}
		l.byPeer[peer]++
		l.mu.Unlock()
		_ = victim.Close()
		return true, false
	}
	fair := max(l.max/max(len(l.byPeer), 1), 1)
	l.mu.Unlock()
	// Nothing to close: a newcomer whose address already holds its fair share of the
	// slots does not wait for one, unless an idle connection of its own will make room.
	return false, peer.IsValid() && mine >= fair && !ownIdle
}

// victim is the connection to close for a newcomer of peer, which holds mine
// connections; nil when none may be closed. ownIdle reports whether peer has an idle
// connection (which it may close once idle long enough).
func (l *connLimiter) victim(peer netip.Addr, mine int, now time.Time) (_ *limitedConn, ownIdle bool) {
	var slow, idle, top *limitedConn
	var hog netip.Addr
	most := 0
	for p, n := range l.byPeer {
		if p.IsValid() && n > most {
			hog, most = p, n
		}
	}
	hogging := most > mine+1
	for c := range l.conns {
		switch c.state {
		case http.StateNew, http.StateActive:
			// Stalled: whoever it belongs to, it is the slow-loris bound near the cap.
			if now.Sub(c.since) >= slowAge && (slow == nil || c.since.Before(slow.since)) {
				slow = c
			}
			if c.state == http.StateNew && hogging && c.peer == hog && (top == nil || c.accepted.Before(top.accepted)) {
				top = c
			}
		case http.StateIdle:
			ownIdle = ownIdle || c.peer == peer
			// Only a connection idle for a while (one that has just answered may
			// already hold its client's next request, unread, which closing would
			// lose), and only the newcomer's own or of an address that holds more than
			// the newcomer's.
			if now.Sub(c.since) >= minEvictableIdle && (c.peer == peer || l.byPeer[c.peer] > mine) && (idle == nil || c.since.Before(idle.since)) {
				idle = c
			}
		}
	}
	switch {
	case slow != nil:
		return slow, ownIdle
	case idle != nil:
		return idle, ownIdle
	}
	return top, ownIdle
}

// release frees a connection's slot, unless it was closed to make room for another,
// which has taken its slot.
func (l *connLimiter) release(c *limitedConn) {
	l.mu.Lock()
	if _, open := l.conns[c]; !open {
		l.mu.Unlock()
		return
	}
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
	if lc.state != state {
		lc.state, lc.since = state, time.Now()
	}
	l.mu.Unlock()
	if state == http.StateIdle {
		l.signal()
	}
}

func (l *connLimiter) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() { c.l.release(c) })
	return err
}
