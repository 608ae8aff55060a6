// Package urlorigin is the one definition of a URL's origin (RFC 6454) the module
// uses wherever it decides where credentials, tokens or nonces may go: the token
// client's redirects and DPoP nonces, the verifier's JWKS redirects and DPoP htu.
package urlorigin

import (
	"net/url"
	"strings"
)

// Of is the ASCII serialisation of u's origin, scheme://host:port, with scheme and
// host lowercased and the port defaulted by the scheme (443 for https, 80 for http).
func Of(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	if port == "" {
		switch scheme {
		case "https":
			port = "443"
		case "http":
			port = "80"
		}
	}
	host := strings.ToLower(u.Hostname())
	if strings.Contains(host, ":") { // IPv6
		host = "[" + host + "]"
	}
	return scheme + "://" + host + ":" + port
}
