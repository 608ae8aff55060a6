package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseDefaults(t *testing.T) {
	cfg, err := Parse([]byte("issuer: https://oauth.example.com/\n"))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if cfg.Issuer != "https://oauth.example.com" {
		t.Errorf("issuer = %q, want the trailing slash removed", cfg.Issuer)
	}
	if cfg.TokenURL() != "https://oauth.example.com/oauth2-token" {
		t.Errorf("TokenURL = %q", cfg.TokenURL())
	}
	if cfg.Tokens.DefaultTTL.Duration != time.Hour {
		t.Errorf("default TTL = %s, want 1h", cfg.Tokens.DefaultTTL)
	}
	if cfg.Signing.Algorithm != "ES256" || cfg.TokenServer.Address != ":8443" {
		t.Errorf("defaults not applied: %+v", cfg)
	}
	if cfg.TokenServer.APIServerGrace.Duration != 5*time.Minute {
		t.Errorf("apiServerGrace = %s, want 5m", cfg.TokenServer.APIServerGrace)
	}
}

func TestParseOverrides(t *testing.T) {
	cfg, err := Parse([]byte(`
issuer: http://127.0.0.1:9443
tokenServer:
  address: 127.0.0.1:9443
  jwksMaxAge: 60
  apiServerGrace: 90s
  trustedProxies: [10.0.0.0/8, 192.0.2.7, "fd00::/64", "::ffff:172.16.0.0/108"]
tokens:
  defaultTTL: 30m
  maxTTL: 7200
signing:
  algorithm: EdDSA
`))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if cfg.Tokens.DefaultTTL.Duration != 30*time.Minute || cfg.Tokens.MaxTTL.Duration != 2*time.Hour {
		t.Errorf("tokens = %+v", cfg.Tokens)
	}
	if cfg.TokenServer.JWKSMaxAge.Duration != time.Minute {
		t.Errorf("jwksMaxAge = %s, want 1m from a number of seconds", cfg.TokenServer.JWKSMaxAge)
	}
	if cfg.TokenServer.APIServerGrace.Duration != 90*time.Second {
		t.Errorf("apiServerGrace = %s, want 90s", cfg.TokenServer.APIServerGrace)
	}
	if got := fmt.Sprint(cfg.TokenServer.TrustedProxyPrefixes()); got != "[10.0.0.0/8 192.0.2.7/32 fd00::/64 172.16.0.0/12]" {
		t.Errorf("trustedProxies = %s", got)
	}
	if cfg.Signing.Algorithm != "EdDSA" || cfg.TokenServer.Address != "127.0.0.1:9443" {
		t.Errorf("overrides not applied: %+v", cfg)
	}
}

func TestParseErrorsNameTheField(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"missing issuer", "tokens: {defaultTTL: 1h}", "issuer: is required"},
		{"relative issuer", "issuer: oauth.example.com", "issuer:"},
		{"issuer with query", "issuer: https://a.example/?x=1", "issuer: must not have a query"},
		{"unknown field", "issuer: https://a.example\ntokens: {defaultTTl: 1h}", `unknown field "tokens.defaultTTl"`},
		{"bad duration", "issuer: https://a.example\ntokens: {defaultTTL: soon}", `tokens.defaultTTL: "soon" is not a duration`},
		{"negative duration", "issuer: https://a.example\ntokens: {defaultTTL: -1h}", "tokens.defaultTTL: must be a positive duration"},
		{"fractional seconds", "issuer: https://a.example\ntokens: {defaultTTL: 1.5s}", "tokens: lifetimes must be whole seconds"},
		{"default above max", "issuer: https://a.example\ntokens: {defaultTTL: 2h, maxTTL: 1h}", "tokens.defaultTTL: 2h0m0s exceeds tokens.maxTTL"},
		{"bad algorithm", "issuer: https://a.example\nsigning: {algorithm: HS256}", `signing.algorithm: "HS256" is not one of`},
		{"bad address", "issuer: https://a.example\ntokenServer: {address: nope}", "tokenServer.address:"},
		{"half TLS", "issuer: https://a.example\ntokenServer: {tls: {certFile: /c.pem}}", "tokenServer.tls: certFile and keyFile"},
		{"wrong type", "issuer: https://a.example\ntokenServer: {maxBodyBytes: lots}", "tokenServer.maxBodyBytes: must be a int64"},
		{"bad proxy", "issuer: https://a.example\ntokenServer: {trustedProxies: [10.0.0.0/8, proxy.example]}", `tokenServer.trustedProxies[1]: "proxy.example" is not an IP address or CIDR`},
		{"no connections", "issuer: https://a.example\ntokenServer: {maxConnections: 0}", "tokenServer.maxConnections: must be at least 1"},
		{"body limit", "issuer: https://a.example\ntokenServer: {maxBodyBytes: 10}", "tokenServer.maxBodyBytes: must be between"},
		{"zero API server grace", "issuer: https://a.example\ntokenServer: {apiServerGrace: 0s}", "tokenServer.apiServerGrace: must be a positive duration"},
		{"bad API server grace", "issuer: https://a.example\ntokenServer: {apiServerGrace: forever}", `tokenServer.apiServerGrace: "forever" is not a duration`},
		{"not yaml", "issuer: [unclosed", "invalid YAML"},
		{"propagation shorter than JWKS caching", "issuer: https://a.example\ntokenServer: {jwksMaxAge: 10m}\nsigning: {propagationDelay: 1m}", "signing.propagationDelay: 1m0s is shorter than tokenServer.jwksMaxAge"},
		{"interval within propagation", "issuer: https://a.example\nsigning: {rotationInterval: 5m}", "signing.rotationInterval: must be longer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml))
			if err == nil {
				t.Fatalf("Parse accepted %q", tt.yaml)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte("issuer: ftp://x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "issuer:") {
		t.Fatalf("Load error = %v, want the path and the field", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "absent.yaml")); err == nil {
		t.Fatal("Load of a missing file succeeded")
	}
}
