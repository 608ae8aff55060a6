// Package config loads, defaults and validates the operator's configuration file
// (--config). Every setting has a documented default; an invalid file fails the start
// with an error that names the offending field.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// TokenPath is the path of the token endpoint below the issuer URL.
const TokenPath = "/oauth2-token"

// Config is the operator's configuration file.
type Config struct {
	// Issuer is the token server's public base URL: the `iss` claim of every token and
	// the prefix of the token and well-known URLs. Required. A trailing slash is removed.
	Issuer string `json:"issuer"`
	// TokenServer configures the HTTP server that issues tokens.
	TokenServer TokenServer `json:"tokenServer"`
	// Tokens configures access-token lifetimes.
	Tokens Tokens `json:"tokens"`
	// Signing configures the token-signing keys.
	Signing Signing `json:"signing"`
	// RateLimit limits failed client authentication.
	RateLimit RateLimit `json:"rateLimit"`
	// WorkloadIdentity configures clients that authenticate with Kubernetes
	// ServiceAccount tokens (method ServiceAccountToken).
	WorkloadIdentity WorkloadIdentity `json:"workloadIdentity"`
	// PrivateKeyJWT configures clients that authenticate with assertions signed by
	// their own private key (method PrivateKeyJWT).
	PrivateKeyJWT PrivateKeyJWT `json:"privateKeyJWT"`
	// Audit configures the audit records of the token server.
	Audit Audit `json:"audit"`
}

// Audit configures the audit trail: one structured log record (logger "audit") per
// token issued and per token request refused. Records never hold a secret, an
// assertion or a token.
type Audit struct {
	// Enabled writes the records. Default true.
	Enabled bool `json:"enabled"`
	// SuccessSampleRate is the fraction of issued tokens recorded, from 0 to 1.
	// Refusals are always recorded (up to refusalsPerSecond). Default 1.
	SuccessSampleRate float64 `json:"successSampleRate"`
	// RefusalsPerSecond bounds the refusal records per second and replica; beyond it
	// refusals are counted and the next record written says how many were left out
	// ("suppressed"). With records of at most about 1 KiB, a flood of bad requests
	// writes at most this many KiB a second. Default 50.
	RefusalsPerSecond int `json:"refusalsPerSecond"`
}

// PrivateKeyJWT configures private_key_jwt client authentication (RFC 7523).
type PrivateKeyJWT struct {
	// MaxAssertionLifetime is how far ahead of now (and of its iat) an assertion's exp
	// may be. It also bounds the replay cache: an assertion's jti is remembered until
	// the assertion expires. Default 5m.
	MaxAssertionLifetime Duration `json:"maxAssertionLifetime"`
	// ReplayCacheSize bounds how many assertion ids (jti) a replica remembers at once
	// (about 100 bytes each). When it is full of unexpired ids, new assertions are
	// refused until some expire. Default 100000.
	ReplayCacheSize int `json:"replayCacheSize"`
}

// WorkloadIdentity configures ServiceAccount-token client authentication.
type WorkloadIdentity struct {
	// Issuer is the `iss` of the cluster's ServiceAccount tokens. Default: the issuer
	// the API server announces at /.well-known/openid-configuration; set it only for
	// clusters whose tokens name an external issuer.
	Issuer string `json:"issuer"`
	// MaxTokenLifetime is the longest lifetime (exp - iat) of a ServiceAccount token
	// accepted as a client credential: a long-lived token is a secret again. Default 24h.
	MaxTokenLifetime Duration `json:"maxTokenLifetime"`
}

// RateLimit limits failed client authentication per client address (never per
// client_id: ids are public), so floods and guessing from an address are slowed
// without ever holding back a client because of requests it did not send. Successful
// requests are not limited.
type RateLimit struct {
	// FailedAuthPerMinute is how many failures a client address may add per minute
	// once its burst is spent. 0 disables the limit. Default 10.
	FailedAuthPerMinute int `json:"failedAuthPerMinute"`
	// FailedAuthBurst is how many failures are allowed at once. Default 20.
	FailedAuthBurst int `json:"failedAuthBurst"`
	// MaxTrackedKeys bounds the limiter's memory under a flood of distinct addresses:
	// keys are fixed-size addresses. Default 100000 (about 13 MiB).
	MaxTrackedKeys int `json:"maxTrackedKeys"`
}

// TokenServer configures the token endpoint's HTTP server.
type TokenServer struct {
	// Address is the listen address. Default ":8443".
	Address string `json:"address"`
	// TLS, when both files are set, makes the server speak HTTPS.
	TLS TLS `json:"tls"`
	// MaxBodyBytes limits a token request's body. Default 16384.
	MaxBodyBytes int64 `json:"maxBodyBytes"`
	// MaxConnections caps open client connections. At the cap, a new connection makes
	// room by closing the keep-alive connection idle longest, else a connection that
	// has not sent its first request within a second, else one of the address holding
	// the most connections; when none may close, it waits to be accepted. Default 4096.
	MaxConnections int `json:"maxConnections"`
	// MaxConnectionsPerAddress caps the connections of one client address (an IPv4
	// address or an IPv6 /64); one more is closed at once. Trusted proxies
	// (trustedProxies) are exempt. Default 512.
	MaxConnectionsPerAddress int `json:"maxConnectionsPerAddress"`
	// ReadHeaderTimeout bounds reading request headers (slow-loris). Default 5s.
	ReadHeaderTimeout Duration `json:"readHeaderTimeout"`
	// ReadTimeout bounds reading a whole request. Default 10s.
	ReadTimeout Duration `json:"readTimeout"`
	// WriteTimeout bounds writing a response. Default 10s.
	WriteTimeout Duration `json:"writeTimeout"`
	// IdleTimeout bounds keep-alive connections between requests. Default 60s.
	IdleTimeout Duration `json:"idleTimeout"`
	// ShutdownTimeout bounds the graceful shutdown. Default 10s.
	ShutdownTimeout Duration `json:"shutdownTimeout"`
	// JWKSMaxAge is the Cache-Control max-age of the JWKS and metadata. Default 5m.
	JWKSMaxAge Duration `json:"jwksMaxAge"`
	// APIServerGrace is how long the Kubernetes API server may be unreachable before
	// the replica reports not ready (/readyz). Tokens are issued from the replica's
	// cache of clients and keys meanwhile, so it stays ready, and keeps receiving
	// token traffic, through a short API server outage; past the grace its cache may
	// be stale (revoked clients, withdrawn namespaces) and it leaves the Service.
	// The API server is probed every few seconds. Positive. Default 5m.
	APIServerGrace Duration `json:"apiServerGrace"`
	// TrustedProxies are the proxies (IP addresses or CIDRs) in front of the token
	// server, such as an Ingress controller or a Gateway. Only when the peer of a
	// connection is one of them is the client's address taken from X-Forwarded-For
	// (the rightmost address that is not itself a trusted proxy) or Forwarded; else
	// it is the peer's. The failed-authentication limit counts per client address.
	// Default none.
	TrustedProxies []string `json:"trustedProxies"`
}

// TrustedProxyPrefixes are TrustedProxies parsed, a bare address as a one-address
// prefix; entries that do not parse (Validate refuses them) are left out.
func (ts TokenServer) TrustedProxyPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ts.TrustedProxies {
		if p, err := parsePrefix(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// parsePrefix reads a CIDR or a single IP address.
func parsePrefix(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if p.Addr().Is4In6() {
		p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
	}
	return p.Masked(), nil
}

// TLS names a PEM certificate and key.
type TLS struct {
	// CertFile is the PEM certificate chain.
	CertFile string `json:"certFile"`
	// KeyFile is the PEM private key.
	KeyFile string `json:"keyFile"`
}

// Enabled reports whether TLS is configured.
func (t TLS) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" }

// Tokens configures access-token lifetimes.
type Tokens struct {
	// DefaultTTL is the lifetime of a token when neither the API nor the client sets
	// one. Default 1h (3600 s).
	DefaultTTL Duration `json:"defaultTTL"`
	// MaxTTL caps every lifetime, whatever the API or client says. Default 24h.
	MaxTTL Duration `json:"maxTTL"`
}

// Signing configures the token-signing keys.
type Signing struct {
	// Algorithm is ES256 (default), RS256 or EdDSA.
	Algorithm string `json:"algorithm"`
	// SecretName is the Secret, in the operator's namespace, that holds the signing
	// keys. Default "oauth-client-operator-signing-keys".
	SecretName string `json:"secretName"`
	// RotationInterval is how long a key signs before the next one is published.
	// Default 720h (30 days).
	RotationInterval Duration `json:"rotationInterval"`
	// PropagationDelay is how long a new key is published in the JWKS before it
	// signs. At least tokenServer.jwksMaxAge, so cached JWKS copies hold it first.
	// Default 10m.
	PropagationDelay Duration `json:"propagationDelay"`
}

// RetirementLeeway is added to tokens.maxTTL to keep a retired key in the JWKS: every
// token it signed has expired by then, even with clock skew.
const RetirementLeeway = 5 * time.Minute

// Default returns the configuration with every default set and no issuer.
func Default() Config {
	return Config{
		TokenServer: TokenServer{
			Address:                  ":8443",
			MaxBodyBytes:             16 << 10,
			MaxConnections:           4096,
			MaxConnectionsPerAddress: 512,
			ReadHeaderTimeout:        Seconds(5),
			ReadTimeout:              Seconds(10),
			WriteTimeout:             Seconds(10),
			IdleTimeout:              Seconds(60),
			ShutdownTimeout:          Seconds(10),
			JWKSMaxAge:               Seconds(300),
			APIServerGrace:           Seconds(300),
			TrustedProxies:           []string{},
		},
		Tokens: Tokens{
			DefaultTTL: Seconds(3600),
			MaxTTL:     Seconds(24 * 3600),
		},
		Signing: Signing{
			Algorithm:        "ES256",
			SecretName:       "oauth-client-operator-signing-keys",
			RotationInterval: Seconds(30 * 24 * 3600),
			PropagationDelay: Seconds(600),
		},
		RateLimit:        RateLimit{FailedAuthPerMinute: 10, FailedAuthBurst: 20, MaxTrackedKeys: 100000},
		WorkloadIdentity: WorkloadIdentity{MaxTokenLifetime: Seconds(24 * 3600)},
		PrivateKeyJWT:    PrivateKeyJWT{MaxAssertionLifetime: Seconds(300), ReplayCacheSize: 100000},
		Audit:            Audit{Enabled: true, SuccessSampleRate: 1, RefusalsPerSecond: 50},
	}
}

// Load reads the YAML (or JSON) file at path over the defaults and validates it.
// Unknown fields are errors, so a misspelt setting never goes unnoticed.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config file: %w", err)
	}
	cfg, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	return cfg, nil
}

// Parse decodes YAML or JSON over the defaults and validates the result.
func Parse(data []byte) (*Config, error) {
	cfg := Default()
	jsonData, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("invalid YAML: %w", err)
	}
	if len(bytes.TrimSpace(jsonData)) > 0 && !bytes.Equal(bytes.TrimSpace(jsonData), []byte("null")) {
		// Case-sensitive, and strict: an unknown or misspelt field is an error.
		strict, err := kjson.UnmarshalStrict(jsonData, &cfg)
		if err != nil {
			return nil, describeDecodeError(err)
		}
		if len(strict) > 0 {
			return nil, describeDecodeError(strict[0])
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

func describeDecodeError(err error) error {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) && typeErr.Field != "" {
		return fmt.Errorf("%s: must be a %s", typeErr.Field, typeErr.Type)
	}
	// encoding/json says `json: unknown field "x"`; keep its words, they name the field.
	return fmt.Errorf("%s", strings.TrimPrefix(err.Error(), "json: "))
}

// FieldError is a validation error of one field of the file.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Validate normalises the issuer and checks every field; the first problem is returned.
func (c *Config) Validate() error {
	c.Issuer = strings.TrimRight(c.Issuer, "/")
	if c.Issuer == "" {
		return &FieldError{"issuer", "is required (the token server's public base URL, e.g. https://oauth.example.com)"}
	}
	u, err := url.Parse(c.Issuer)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return &FieldError{"issuer", fmt.Sprintf("%q is not an absolute http(s) URL", c.Issuer)}
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return &FieldError{"issuer", "must not have a query, fragment or user info (RFC 8414)"}
	}
	ts := &c.TokenServer
	if _, _, err := net.SplitHostPort(ts.Address); err != nil {
		return &FieldError{"tokenServer.address", fmt.Sprintf("%q is not host:port", ts.Address)}
	}
	if ts.TLS.Enabled() && (ts.TLS.CertFile == "" || ts.TLS.KeyFile == "") {
		return &FieldError{"tokenServer.tls", "certFile and keyFile must be set together"}
	}
	for i, s := range ts.TrustedProxies {
		if _, err := parsePrefix(s); err != nil {
			return &FieldError{fmt.Sprintf("tokenServer.trustedProxies[%d]", i), fmt.Sprintf("%q is not an IP address or CIDR", s)}
		}
	}
	if ts.MaxConnections < 1 {
		return &FieldError{"tokenServer.maxConnections", "must be at least 1"}
	}
	if ts.MaxConnectionsPerAddress < 1 {
		return &FieldError{"tokenServer.maxConnectionsPerAddress", "must be at least 1"}
	}
	if ts.MaxBodyBytes < 1024 || ts.MaxBodyBytes > 1<<20 {
		return &FieldError{"tokenServer.maxBodyBytes", "must be between 1024 and 1048576"}
	}
	for _, d := range []struct {
		field string
		v     Duration
	}{
		{"tokenServer.readHeaderTimeout", ts.ReadHeaderTimeout},
		{"tokenServer.readTimeout", ts.ReadTimeout},
		{"tokenServer.writeTimeout", ts.WriteTimeout},
		{"tokenServer.idleTimeout", ts.IdleTimeout},
		{"tokenServer.shutdownTimeout", ts.ShutdownTimeout},
		{"tokenServer.jwksMaxAge", ts.JWKSMaxAge},
		{"tokenServer.apiServerGrace", ts.APIServerGrace},
		{"tokens.defaultTTL", c.Tokens.DefaultTTL},
		{"tokens.maxTTL", c.Tokens.MaxTTL},
		{"signing.rotationInterval", c.Signing.RotationInterval},
		{"signing.propagationDelay", c.Signing.PropagationDelay},
		{"workloadIdentity.maxTokenLifetime", c.WorkloadIdentity.MaxTokenLifetime},
		{"privateKeyJWT.maxAssertionLifetime", c.PrivateKeyJWT.MaxAssertionLifetime},
	} {
		if d.v.invalid != "" {
			return &FieldError{d.field, fmt.Sprintf("%q is not a duration (use e.g. 90s, 10m, 1h, or a number of seconds)", d.v.invalid)}
		}
		if d.v.Duration <= 0 {
			return &FieldError{d.field, "must be a positive duration"}
		}
	}
	if c.Tokens.DefaultTTL.Duration%time.Second != 0 || c.Tokens.MaxTTL.Duration%time.Second != 0 {
		return &FieldError{"tokens", "lifetimes must be whole seconds"}
	}
	if c.Tokens.DefaultTTL.Duration > c.Tokens.MaxTTL.Duration {
		return &FieldError{"tokens.defaultTTL", fmt.Sprintf("%s exceeds tokens.maxTTL %s", c.Tokens.DefaultTTL, c.Tokens.MaxTTL)}
	}
	switch c.Signing.Algorithm {
	case "ES256", "RS256", "EdDSA":
	default:
		return &FieldError{"signing.algorithm", fmt.Sprintf("%q is not one of ES256, RS256, EdDSA", c.Signing.Algorithm)}
	}
	if c.Signing.SecretName == "" {
		return &FieldError{"signing.secretName", "is required"}
	}
	if c.Signing.PropagationDelay.Duration < ts.JWKSMaxAge.Duration {
		return &FieldError{"signing.propagationDelay", fmt.Sprintf("%s is shorter than tokenServer.jwksMaxAge %s: verifiers could meet the new key before their cached JWKS has it", c.Signing.PropagationDelay, ts.JWKSMaxAge)}
	}
	if rl := c.RateLimit; rl.FailedAuthPerMinute < 0 {
		return &FieldError{"rateLimit.failedAuthPerMinute", "must not be negative (0 disables the limit)"}
	} else if rl.FailedAuthPerMinute > 0 && rl.FailedAuthBurst < 1 {
		return &FieldError{"rateLimit.failedAuthBurst", "must be at least 1"}
	} else if rl.FailedAuthPerMinute > 0 && rl.MaxTrackedKeys < 100 {
		return &FieldError{"rateLimit.maxTrackedKeys", "must be at least 100"}
	}
	if r := c.Audit.SuccessSampleRate; r < 0 || r > 1 {
		return &FieldError{"audit.successSampleRate", "must be between 0 and 1"}
	}
	if c.Audit.RefusalsPerSecond < 1 {
		return &FieldError{"audit.refusalsPerSecond", "must be at least 1"}
	}
	if c.PrivateKeyJWT.ReplayCacheSize < 1000 {
		return &FieldError{"privateKeyJWT.replayCacheSize", "must be at least 1000"}
	}
	if iss := c.WorkloadIdentity.Issuer; iss != "" {
		if u, err := url.Parse(iss); err != nil || u.Scheme == "" || u.Host == "" {
			return &FieldError{"workloadIdentity.issuer", fmt.Sprintf("%q is not an absolute URL", iss)}
		}
	}
	if c.Signing.RotationInterval.Duration <= c.Signing.PropagationDelay.Duration {
		return &FieldError{"signing.rotationInterval", "must be longer than signing.propagationDelay"}
	}
	return nil
}

// TokenURL is the token endpoint's URL.
func (c *Config) TokenURL() string { return c.Issuer + TokenPath }

// Duration is a time.Duration written as a Go duration string ("1h", "90s") or as a
// number of seconds (3600). A value that is neither is kept and reported by Validate,
// which knows the field's name.
type Duration struct {
	time.Duration
	invalid string
}

// Seconds returns a Duration of n seconds.
func Seconds(n int64) Duration { return Duration{Duration: time.Duration(n) * time.Second} }

// UnmarshalJSON accepts "1h30m" or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	*d = Duration{}
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			d.invalid = s
			return nil
		}
		d.Duration = v
		return nil
	}
	var n float64
	if err := json.Unmarshal(b, &n); err != nil {
		d.invalid = string(b)
		return nil
	}
	d.Duration = time.Duration(n * float64(time.Second))
	return nil
}

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }
