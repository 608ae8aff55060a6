package httpserver

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// connLimiter caps the connections a listener holds open at once, like
// netutil.LimitListener, but idle keep-alive connections do not keep new clients out:
// when the cap is reached and a new connection arrives, the connection that has been
// idle longest is closed to make room (a client reconnects for its next
// request, as it does after the idle timeout). Connections reading a request or
// writing a response are never closed for room; a connection that sends nothing holds
// its slot only until tokenServer.readHeaderTimeout (the slow-loris bound).
type connLimiter struct {
	net.Listener
	max int

	mu sync.Mutex
	// taken counts the slots held by open connections.
	taken int
	conns map[*limitedConn]struct{}
	// freed is signalled (without blocking) whenever a slot is released or a
	// connection becomes idle, so a full Accept looks again.
	freed chan struct{}
	done  chan struct{}
	once  sync.Once
}

type limitedConn struct {
	net.Conn
	l         *connLimiter
	idleSince time.Time // zero unless idle; guarded by l.mu
	closeOnce sync.Once
}

func newConnLimiter(ln net.Listener, max int) *connLimiter {
	return &connLimiter{Listener: ln, max: max, conns: make(map[*limitedConn]struct{}),
		freed: make(chan struct{}, 1), done: make(chan struct{})}
}

// Accept accepts a connection, then waits for a free slot for it: when every slot is
// taken it closes the connection idle longest, else waits until one is released or
// becomes idle. Only a client that has arrived makes an idle connection close.
func (l *connLimiter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	for !l.reserve() {
		select {
		case <-l.freed:
		case <-time.After(minEvictableIdle / 4): // an idle connection may have aged enough
		case <-l.done:
			_ = c.Close()
			return nil, net.ErrClosed
		}
	}
	lc := &limitedConn{Conn: c, l: l}
	l.mu.Lock()
	l.conns[lc] = struct{}{}
	l.mu.Unlock()
	return lc, nil
}

// minEvictableIdle is how long a connection must have been idle before a new client
// may take its slot.
const minEvictableIdle = 500 * time.Millisecond

// reserve takes a slot if one is free; else it closes the connection idle longest,
// whose slot is free once it has closed (then freed is signalled).
func (l *connLimiter) reserve() bool {
	l.mu.Lock()
	if l.taken < l.max {
		l.taken++
		l.mu.Unlock()
		return true
	}
	var oldest *limitedConn
	now := time.Now()
	for c := range l.conns {
		// Only a connection idle for a while: one that has just answered may already
		// hold its client's next request, unread, which closing would lose.
		if !c.idleSince.IsZero() && now.Sub(c.idleSince) >= minEvictableIdle && (oldest == nil || c.idleSince.Before(oldest.idleSince)) {
			oldest = c
		}
	}
	if oldest != nil {
		oldest.idleSince = time.Time{} // closed once
	}
	l.mu.Unlock()
	if oldest != nil {
		_ = oldest.Close()
	}
	return false
}

// release frees a connection's slot.
func (l *connLimiter) release(c *limitedConn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.taken--
	l.mu.Unlock()
	l.signal()
}

func (l *connLimiter) signal() {
	select {
	case l.freed <- struct{}{}:
	default:
	}
}

// connState is the http.Server's ConnState hook: it records which connections are
// idle.
func (l *connLimiter) connState(c net.Conn, state http.ConnState) {
	if nc, ok := c.(interface{ NetConn() net.Conn }); ok { // TLS
		c = nc.NetConn()
	}
	lc, ok := c.(*limitedConn)
	if !ok {
		return
	}
	l.mu.Lock()
	if _, open := l.conns[lc]; !open {
		l.mu.Unlock()
		return
	}
	if state == http.StateIdle {
		lc.idleSince = time.Now()
	} else {
		lc.idleSince = time.Time{}
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
