package httpserver

// Reproductions of the attack review of issue 22 item 3's fix: each asserts the safe
// behaviour and failed before its fix. Loopback only, bounded in time and count:
//
//	go test -count=1 -run '^TestAttack' -v ./internal/httpserver/

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// slowBody holds slots with whole request heads announcing a body that never comes:
// net/http reports such a connection StateActive (a request is being read), which
// the limiter never closes for room; it holds its slot until tokenServer.readTimeout.
func slowBody(ctx context.Context, from, addr string, n int, wg *sync.WaitGroup) *atomic.Int64 {
	return holdSlots(ctx, from, addr, "POST /oauth2-token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 200\r\n\r\ngrant_type=", n, wg)
}

// TestAttackSlowBodiesHoldEverySlot: four addresses (tokenServer.maxConnections /
// maxConnectionsPerAddress of them; 8 with the defaults 4096/512) hold every slot with
// requests whose body never comes. No connection is evictable, so Accept waits for one
// to time out (readTimeout, 10 s by default) and accepts nobody meanwhile: a JWKS GET
// from another address, and one from a trusted proxy, wait seconds. Issue 22 item 3's
// bar: under 100 ms.
func TestAttackSlowBodiesHoldEverySlot(t *testing.T) {
	srv := startServer(t, "tokenServer: {address: '127.0.0.1:0', maxConnections: 64, maxConnectionsPerAddress: 16, readHeaderTimeout: 5s, readTimeout: 10s, trustedProxies: ['127.0.0.10']}", nil)
	addr := srv.Addr().String()
	client := func(from string) *http.Client {
		return &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext:       (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}).DialContext,
		}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	var wg sync.WaitGroup
	var opened []*atomic.Int64
	for _, from := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"} {
		opened = append(opened, slowBody(ctx, from, addr, 16, &wg))
	}
	defer func() { cancel(); wg.Wait() }()
	time.Sleep(1500 * time.Millisecond) // the attack fills the slots

	for _, victim := range []struct{ name, from string }{{"another address", "127.0.0.9"}, {"a trusted proxy", "127.0.0.10"}} {
		var took []time.Duration
		for range 4 {
			start := time.Now()
			resp, err := client(victim.from).Get("http://" + addr + "/.well-known/jwks.json")
			if err != nil {
				t.Errorf("%s during the attack: %v after %s", victim.name, err, time.Since(start))
				took = append(took, time.Since(start))
				continue
			}
			_ = resp.Body.Close()
			took = append(took, time.Since(start))
			time.Sleep(100 * time.Millisecond)
		}
		sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
		var total int64
		for _, o := range opened {
			total += o.Load()
		}
		t.Logf("%s: requests took %v (median %s); %d attack connections opened so far", victim.name, took, took[len(took)/2], total)
		if took[len(took)/2] > 100*time.Millisecond {
			t.Errorf("%s waited %v during the attack, want a median under 100 ms", victim.name, took)
		}
	}
}

// fakeConn is a connection from a chosen peer address.
type fakeConn struct {
	net.Conn
	remote net.Addr
	closed atomic.Bool
}

func (c *fakeConn) RemoteAddr() net.Addr { return c.remote }
func (c *fakeConn) Close() error         { c.closed.Store(true); return c.Conn.Close() }

// pipeFrom is one end of an in-memory connection that says it comes from ip:port;
// both ends are closed when the test ends.
func pipeFrom(t *testing.T, ip string, port int) *fakeConn {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { _ = a.Close(); _ = b.Close() })
	return &fakeConn{Conn: a, remote: &net.TCPAddr{IP: net.ParseIP(ip), Port: port}}
}

// closedCount is how many of conns have been closed.
func closedCount(conns []*fakeConn) int {
	n := 0
	for _, c := range conns {
		if c.closed.Load() {
			n++
		}
	}
	return n
}

// fakeListener hands out the connections sent on conns.
type fakeListener struct {
	net.Listener
	conns chan net.Conn
}

func (l *fakeListener) Accept() (net.Conn, error) {
	c, ok := <-l.conns
	if !ok {
		return nil, net.ErrClosed
	}
	return c, nil
}

// TestAttackIPv6PodsShareOneAddress: IPv6 peers are counted per /64. In a Kubernetes
// IPv6 or dual-stack cluster the pods of a node share a /64 (kube-controller-manager's
// default --node-cidr-mask-size-ipv6 is 64; Cilium's and Calico's default pools put the
// pods of many nodes, or all, in one /64). One tenant's pod holding
// maxConnectionsPerAddress connections (idle keep-alive ones or slow ones alike) makes
// every connection of every other pod of that /64 be closed at once, whoever's it is.
func TestAttackIPv6PodsShareOneAddress(t *testing.T) {
	t.Parallel()
	conns := make(chan net.Conn, 8)
	l := newConnLimiter(&fakeListener{conns: conns}, 4096, 4, nil)
	dial := func(from string) *fakeConn {
		a, b := net.Pipe()
		t.Cleanup(func() { _ = a.Close(); _ = b.Close() })
		return &fakeConn{Conn: a, remote: net.TCPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(from), 40000))}
	}
	// The attacker's pod (another tenant's namespace) takes its share.
	for range 4 {
		conns <- dial("fd00:10:244:1::a")
		if _, err := l.Accept(); err != nil {
			t.Fatal(err)
		}
	}
	// A victim pod on the same node: its connection is closed at once, never accepted.
	victim := dial("fd00:10:244:1::b")
	conns <- victim
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept() // returns the next connection it keeps
		accepted <- c
	}()
	time.Sleep(200 * time.Millisecond)
	close(conns)
	<-accepted
	if victim.closed.Load() {
		t.Errorf("a pod's connection was refused because another pod of its /64 holds %d connections (maxConnections 4096, %d open)", l.perAddress, l.taken)
	}
}

// TestAttackKeepAliveEvictedBeforeSlowLoris: at the cap, a newcomer makes room by
// closing an idle keep-alive connection before any half-sent one. During issue 22's own
// slow-loris attack (five addresses here, so that some newcomer is always below its
// address's share), a legitimate client that keeps its connection alive and asks every
// 0.7 s loses it again and again: a new TCP (and, with TLS, handshake) per request, and
// a request racing the close fails when it is not retried (a POST). Fails when the
// client needed more than 3 connections for 20 requests.
func TestAttackKeepAliveEvictedBeforeSlowLoris(t *testing.T) {
	srv := startServer(t, "tokenServer: {address: '127.0.0.1:0', maxConnections: 64, maxConnectionsPerAddress: 16, readHeaderTimeout: 5s}", nil)
	addr := srv.Addr().String()
	var dials atomic.Int64
	base := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.9")}}
	legit := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			dials.Add(1)
			return base.DialContext(ctx, network, a)
		},
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	for _, from := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"} {
		slowLoris(ctx, from, addr, 16, &wg)
	}
	time.Sleep(1500 * time.Millisecond)
	failed := 0
	var took []time.Duration
	for range 20 {
		start := time.Now()
		resp, err := legit.Post("http://"+addr+"/oauth2-token", "application/json", strings.NewReader(`{"grant_type":"client_credentials"}`))
		took = append(took, time.Since(start))
		if err != nil {
			failed++
		} else {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		}
		time.Sleep(700 * time.Millisecond)
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	t.Logf("keep-alive client during the slow-loris attack: 20 POSTs, %d connections opened, %d failed, median %s, max %s",
		dials.Load(), failed, took[len(took)/2], took[len(took)-1])
	if dials.Load() > 3 || failed > 0 {
		t.Errorf("a keep-alive client needed %d connections for 20 requests (%d failed)", dials.Load(), failed)
	}
}

// TestAttackSlowLorisMoreAddresses is issue 22's own slow-loris test (half-sent request
// lines, reconnecting) with more addresses than maxConnections/maxConnectionsPerAddress:
// a newcomer from an address just below its share finds no connection it may close
// (the hog holds only one more than its address), so it waits in Accept, and every
// connection behind it in the kernel's queue waits too. Issue 22's bar: a median under
// 100 ms for another address's request.
func TestAttackSlowLorisMoreAddresses(t *testing.T) {
	srv := startServer(t, "tokenServer: {address: '127.0.0.1:0', maxConnections: 64, maxConnectionsPerAddress: 16, readHeaderTimeout: 5s}", nil)
	addr := srv.Addr().String()
	victim := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext:       (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.9")}}).DialContext,
	}}
	for _, n := range []int{5, 8} {
		t.Run(fmt.Sprint(n, " addresses"), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			var wg sync.WaitGroup
			for i := range n {
				slowLoris(ctx, fmt.Sprint("127.0.0.", 20+i), addr, 16, &wg)
			}
			defer func() { cancel(); wg.Wait() }()
			time.Sleep(1500 * time.Millisecond)
			var took []time.Duration
			for range 10 {
				start := time.Now()
				resp, err := victim.Get("http://" + addr + "/.well-known/jwks.json")
				if err != nil {
					t.Fatalf("victim: %v after %s", err, time.Since(start))
				}
				_ = resp.Body.Close()
				took = append(took, time.Since(start))
				time.Sleep(100 * time.Millisecond)
			}
			sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
			t.Logf("%d addresses × 16: victim requests took %v (median %s)", n, took, took[len(took)/2])
			if took[len(took)/2] > 100*time.Millisecond {
				t.Errorf("victim median %s, want under 100 ms", took[len(took)/2])
			}
		})
	}
}
