// Package clientaddr tells the address an HTTP request comes from: the peer, or behind
// trusted proxies the address they forward. The failed-authentication limit counts it
// and audit records name it.
package clientaddr

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Resolver tells the address a request comes from, behind the proxies it trusts
// (tokenServer.trustedProxies).
type Resolver struct {
	// TrustedProxies are the peers whose forwarding headers name the client.
	TrustedProxies []netip.Prefix
}

// Of is the address r comes from, in canonical form (IPv4-mapped IPv6 addresses as
// IPv4, no zone), so that the same client always has the same key.
//
// It is the peer's address, unless the peer is one of the trusted proxies: then it is
// the rightmost address of X-Forwarded-For (or, without that header, of the Forwarded
// header's for= parameters) that is not itself a trusted proxy; when there is none (or
// a hop before it is not an address), the peer. Forwarding headers from any other peer
// are ignored: anyone can set them.
func (s Resolver) Of(r *http.Request) netip.Addr {
	peer := PeerAddr(r)
	if len(s.TrustedProxies) == 0 || !s.trusted(peer) {
		return peer
	}
	hops := forwardedFor(r.Header)
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := parseHop(hops[i])
		if !ok {
			// Not an address: what lies beyond it cannot be trusted either.
			break
		}
		if !s.trusted(a) {
			return a
		}
	}
	// No untrusted address: a header naming only trusted addresses (or none) decides
	// nothing; the peer is the client as far as we know.
	return peer
}

// trusted reports whether a is one of the trusted proxies.
func (s Resolver) trusted(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range s.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// PeerAddr is the IP address of the connection's other end, canonical; the zero Addr
// when RemoteAddr holds none (a Unix socket, a test).
func PeerAddr(r *http.Request) netip.Addr {
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

// forwardedFor lists the hops a request went through, oldest first: the entries of
// every X-Forwarded-For header, or, when there is none, the for= values of every
// Forwarded header (RFC 7239).
func forwardedFor(h http.Header) []string {
	var hops []string
	if xff := h.Values("X-Forwarded-For"); len(xff) > 0 {
		for _, v := range xff {
			for _, hop := range strings.Split(v, ",") {
				hops = append(hops, strings.TrimSpace(hop))
			}
		}
		return hops
	}
	for _, v := range h.Values("Forwarded") {
		for _, elem := range strings.Split(v, ",") {
			hop := "" // an element without for= is a hop of unknown address
			for _, pair := range strings.Split(elem, ";") {
				name, value, _ := strings.Cut(strings.TrimSpace(pair), "=")
				if strings.EqualFold(name, "for") {
					hop = strings.Trim(value, `"`)
				}
			}
			hops = append(hops, hop)
		}
	}
	return hops
}

// parseHop reads one forwarded address: an IP address, with or without a port, IPv6
// possibly in brackets (as RFC 7239 writes it).
func parseHop(hop string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(hop); err == nil {
		return a.Unmap().WithZone(""), true
	}
	if ap, err := netip.ParseAddrPort(hop); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(hop, "["), "]")); err == nil {
		return a.Unmap().WithZone(""), true
	}
	return netip.Addr{}, false
}
