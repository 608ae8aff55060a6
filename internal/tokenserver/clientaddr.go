package tokenserver

import (
	"net"
	"net/http"
	"net/netip"
)

// clientAddr is the address a request comes from, as the failed-authentication limit
// counts it: the peer's IP address, in canonical form (IPv4-mapped IPv6 addresses as
// IPv4, no zone), so that the same client always has the same key. Forwarding headers
// are not trusted: anyone can set them.
func (s *Server) clientAddr(r *http.Request) string {
	return peerAddr(r).String()
}

// peerAddr is the IP address of the connection's other end; the zero Addr when
// RemoteAddr holds none (a Unix socket, a test).
func peerAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap().WithZone("")
}
