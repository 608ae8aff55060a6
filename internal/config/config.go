// Package config loads, defaults and validates the operator's configuration file
// (--config). Every setting has a documented default; an invalid file fails the start
// with every problem at once, each naming its field.
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

	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/oauth-client-operator/oauth-client-operator/internal/signing"
)

// TokenPath is the path of the token endpoint below the issuer URL.
const TokenPath = "/oauth2-token"

// DefaultReconcileWorkers is how many OAuthClients the controller reconciles at once
// unless the manager's --max-concurrent-reconciles says otherwise: the work waits on
// the API server, so several workers fill the time.
const DefaultReconcileWorkers = 4

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
	// DPoP configures sender-constrained tokens (RFC 9449): the DPoP proofs of
	// token requests.
	DPoP DPoP `json:"dpop"`
	// Audit configures the audit records of the token server.
	Audit Audit `json:"audit"`
	// Clients configures how the controller manages OAuthClients' credentials.
	Clients Clients `json:"clients"`
}

// Clients configures how the controller manages OAuthClients' credentials.
type Clients struct {
	// RotateSecretMinInterval is the shortest time between two rotations of one
	// client's credential that its oauth.operator.dev/rotate-secret annotation
	// requests. A new value sooner is acted on once the interval has passed (an event
	// says when), so writing the annotation in a loop costs one key generation per
	// interval, not one per write. Default 1m.
	RotateSecretMinInterval Duration `json:"rotateSecretMinInterval"`
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

// DPoP configures the DPoP proofs (RFC 9449) of token requests.
type DPoP struct {
	// ProofMaxAge is how old a proof's iat may be (it may be 30 s in the future,
	// for clock skew). It also bounds the replay cache: a proof's jti is
	// remembered until the proof is too old. At most 5m. Default 60s.
	ProofMaxAge Duration `json:"proofMaxAge"`
	// ReplayCacheSize bounds how many proof ids (jti) a replica remembers at once
	// (about 100 bytes each), shared by clients as privateKeyJWT.replayCacheSize
	// is. When a client has no room left, its proofs are refused (503) until some
	// are too old. Default 100000.
	ReplayCacheSize int `json:"replayCacheSize"`
}

// MaxDPoPProofMaxAge bounds dpop.proofMaxAge: a proof is made for one request.
const MaxDPoPProofMaxAge = 5 * time.Minute

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
	// room by closing a connection stalled for a second (its first request's headers or
	// a request body not sent), else the keep-alive connection idle longest (its own,
	// or of an address holding more), else one of the address holding the most
	// connections; when none may close, it waits without holding up others, or is
	// closed when its address already holds its fair share. Default 4096.
	MaxConnections int `json:"maxConnections"`
	// MaxConnectionsPerAddress caps the connections of one client address (a whole
	// IPv6 address: a node's pods often share one /64); one more is closed at once.
	// Trusted proxies (trustedProxies) are exempt. Default 512.
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
	Algorithm signing.Algorithm `json:"algorithm"`
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
			Algorithm:        signing.DefaultAlgorithm,
			SecretName:       "oauth-client-operator-signing-keys",
			RotationInterval: Seconds(30 * 24 * 3600),
			PropagationDelay: Seconds(600),
		},
		RateLimit:        RateLimit{FailedAuthPerMinute: 10, FailedAuthBurst: 20, MaxTrackedKeys: 100000},
		WorkloadIdentity: WorkloadIdentity{MaxTokenLifetime: Seconds(24 * 3600)},
		PrivateKeyJWT:    PrivateKeyJWT{MaxAssertionLifetime: Seconds(300), ReplayCacheSize: 100000},
		DPoP:             DPoP{ProofMaxAge: Seconds(60), ReplayCacheSize: 100000},
		Audit:            Audit{Enabled: true, SuccessSampleRate: 1, RefusalsPerSecond: 50},
		Clients:          Clients{RotateSecretMinInterval: Seconds(60)},
	}
}

// Load reads the YAML (or JSON) file at path over the defaults and validates it.
// Unknown fields are errors, so a misspelt setting never goes unnoticed; every problem
// of the file is reported at once.
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

// Parse decodes YAML or JSON over the defaults and validates the result. The error
// lists every problem: unknown fields and each field Validate refuses (a
// k8s.io/apimachinery utilerrors.Aggregate, whose field errors are *field.Error).
func Parse(data []byte) (*Config, error) {
	cfg := Default()
	jsonData, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("invalid YAML: %w", err)
	}
	var errs []error
	if len(bytes.TrimSpace(jsonData)) > 0 && !bytes.Equal(bytes.TrimSpace(jsonData), []byte("null")) {
		// Case-sensitive, and strict: an unknown or misspelt field is an error.
		strict, err := kjson.UnmarshalStrict(jsonData, &cfg)
		if err != nil {
			return nil, describeDecodeError(err)
		}
		for _, e := range strict {
			errs = append(errs, describeDecodeError(e))
		}
	}
	for _, e := range cfg.Validate() {
		errs = append(errs, e)
	}
	if err := utilerrors.NewAggregate(errs); err != nil {
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
	return errors.New(strings.TrimPrefix(err.Error(), "json: "))
}

// Validate normalises the issuer and checks every field. It returns every problem,
// each naming its field path; none means the config is usable. A rule between two
// fields is checked only when both are valid on their own.
func (c *Config) Validate() field.ErrorList {
	c.Issuer = strings.TrimRight(c.Issuer, "/")
	var errs field.ErrorList
	errs = append(errs, validateIssuer(c.Issuer)...)
	errs = append(errs, c.TokenServer.validate(field.NewPath("tokenServer"))...)
	errs = append(errs, c.validateDurations()...)
	errs = append(errs, c.Tokens.validate(field.NewPath("tokens"))...)
	errs = append(errs, c.validateSigning(field.NewPath("signing"))...)
	errs = append(errs, c.RateLimit.validate(field.NewPath("rateLimit"))...)
	errs = append(errs, c.Audit.validate(field.NewPath("audit"))...)
	if c.PrivateKeyJWT.ReplayCacheSize < 1000 {
		errs = append(errs, field.Invalid(field.NewPath("privateKeyJWT", "replayCacheSize"), c.PrivateKeyJWT.ReplayCacheSize, "must be at least 1000"))
	}
	if c.DPoP.ReplayCacheSize < 1000 {
		errs = append(errs, field.Invalid(field.NewPath("dpop", "replayCacheSize"), c.DPoP.ReplayCacheSize, "must be at least 1000"))
	}
	if d := c.DPoP.ProofMaxAge; d.valid() && d.Duration > MaxDPoPProofMaxAge {
		errs = append(errs, field.Invalid(field.NewPath("dpop", "proofMaxAge"), d.String(), "must be at most 5m"))
	}
	if iss := c.WorkloadIdentity.Issuer; iss != "" {
		if u, err := url.Parse(iss); err != nil || u.Scheme == "" || u.Host == "" {
			errs = append(errs, field.Invalid(field.NewPath("workloadIdentity", "issuer"), iss, "is not an absolute URL"))
		}
	}
	return errs
}

func validateIssuer(issuer string) field.ErrorList {
	path := field.NewPath("issuer")
	if issuer == "" {
		return field.ErrorList{field.Required(path, "the token server's public base URL, e.g. https://oauth.example.com")}
	}
	u, err := url.Parse(issuer)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return field.ErrorList{field.Invalid(path, issuer, "is not an absolute http(s) URL")}
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return field.ErrorList{field.Invalid(path, issuer, "must not have a query, fragment or user info (RFC 8414)")}
	}
	return nil
}

func (ts *TokenServer) validate(path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if _, _, err := net.SplitHostPort(ts.Address); err != nil {
		errs = append(errs, field.Invalid(path.Child("address"), ts.Address, "is not host:port"))
	}
	switch tls := path.Child("tls"); {
	case ts.TLS.CertFile != "" && ts.TLS.KeyFile == "":
		errs = append(errs, field.Required(tls.Child("keyFile"), "certFile and keyFile must be set together"))
	case ts.TLS.KeyFile != "" && ts.TLS.CertFile == "":
		errs = append(errs, field.Required(tls.Child("certFile"), "certFile and keyFile must be set together"))
	}
	for i, s := range ts.TrustedProxies {
		if _, err := parsePrefix(s); err != nil {
			errs = append(errs, field.Invalid(path.Child("trustedProxies").Index(i), s, "is not an IP address or CIDR"))
		}
	}
	if ts.MaxConnections < 1 {
		errs = append(errs, field.Invalid(path.Child("maxConnections"), ts.MaxConnections, "must be at least 1"))
	}
	if ts.MaxConnectionsPerAddress < 1 {
		errs = append(errs, field.Invalid(path.Child("maxConnectionsPerAddress"), ts.MaxConnectionsPerAddress, "must be at least 1"))
	}
	if ts.MaxBodyBytes < 1024 || ts.MaxBodyBytes > 1<<20 {
		errs = append(errs, field.Invalid(path.Child("maxBodyBytes"), ts.MaxBodyBytes, "must be between 1024 and 1048576"))
	}
	return errs
}

// validateDurations checks that every duration of the file is one, and positive.
func (c *Config) validateDurations() field.ErrorList {
	ts := &c.TokenServer
	var errs field.ErrorList
	for _, d := range []struct {
		path *field.Path
		v    Duration
	}{
		{field.NewPath("tokenServer", "readHeaderTimeout"), ts.ReadHeaderTimeout},
		{field.NewPath("tokenServer", "readTimeout"), ts.ReadTimeout},
		{field.NewPath("tokenServer", "writeTimeout"), ts.WriteTimeout},
		{field.NewPath("tokenServer", "idleTimeout"), ts.IdleTimeout},
		{field.NewPath("tokenServer", "shutdownTimeout"), ts.ShutdownTimeout},
		{field.NewPath("tokenServer", "jwksMaxAge"), ts.JWKSMaxAge},
		{field.NewPath("tokenServer", "apiServerGrace"), ts.APIServerGrace},
		{field.NewPath("tokens", "defaultTTL"), c.Tokens.DefaultTTL},
		{field.NewPath("tokens", "maxTTL"), c.Tokens.MaxTTL},
		{field.NewPath("signing", "rotationInterval"), c.Signing.RotationInterval},
		{field.NewPath("signing", "propagationDelay"), c.Signing.PropagationDelay},
		{field.NewPath("workloadIdentity", "maxTokenLifetime"), c.WorkloadIdentity.MaxTokenLifetime},
		{field.NewPath("privateKeyJWT", "maxAssertionLifetime"), c.PrivateKeyJWT.MaxAssertionLifetime},
		{field.NewPath("dpop", "proofMaxAge"), c.DPoP.ProofMaxAge},
		{field.NewPath("clients", "rotateSecretMinInterval"), c.Clients.RotateSecretMinInterval},
	} {
		if d.v.invalid != "" {
			errs = append(errs, field.Invalid(d.path, d.v.invalid, "is not a duration (use e.g. 90s, 10m, 1h, or a number of seconds)"))
		} else if d.v.Duration <= 0 {
			errs = append(errs, field.Invalid(d.path, d.v.String(), "must be a positive duration"))
		}
	}
	return errs
}

func (t *Tokens) validate(path *field.Path) field.ErrorList {
	if !t.DefaultTTL.valid() || !t.MaxTTL.valid() {
		return nil // validateDurations says why
	}
	var errs field.ErrorList
	for _, d := range []struct {
		name string
		v    Duration
	}{{"defaultTTL", t.DefaultTTL}, {"maxTTL", t.MaxTTL}} {
		if d.v.Duration%time.Second != 0 {
			errs = append(errs, field.Invalid(path.Child(d.name), d.v.String(), "lifetimes must be whole seconds"))
		}
	}
	if t.DefaultTTL.Duration > t.MaxTTL.Duration {
		errs = append(errs, field.Invalid(path.Child("defaultTTL"), t.DefaultTTL.String(), fmt.Sprintf("exceeds tokens.maxTTL %s", t.MaxTTL)))
	}
	return errs
}

func (c *Config) validateSigning(path *field.Path) field.ErrorList {
	var errs field.ErrorList
	sg := &c.Signing
	if !sg.Algorithm.Valid() {
		errs = append(errs, field.Invalid(path.Child("algorithm"), string(sg.Algorithm), signing.ErrUnsupportedAlgorithm.Error()))
	}
	if sg.SecretName == "" {
		errs = append(errs, field.Required(path.Child("secretName"), ""))
	}
	if sg.PropagationDelay.valid() && c.TokenServer.JWKSMaxAge.valid() && sg.PropagationDelay.Duration < c.TokenServer.JWKSMaxAge.Duration {
		errs = append(errs, field.Invalid(path.Child("propagationDelay"), sg.PropagationDelay.String(),
			fmt.Sprintf("is shorter than tokenServer.jwksMaxAge %s: verifiers could meet the new key before their cached JWKS has it", c.TokenServer.JWKSMaxAge)))
	}
	if sg.RotationInterval.valid() && sg.PropagationDelay.valid() && sg.RotationInterval.Duration <= sg.PropagationDelay.Duration {
		errs = append(errs, field.Invalid(path.Child("rotationInterval"), sg.RotationInterval.String(), "must be longer than signing.propagationDelay"))
	}
	return errs
}

func (rl *RateLimit) validate(path *field.Path) field.ErrorList {
	switch {
	case rl.FailedAuthPerMinute < 0:
		return field.ErrorList{field.Invalid(path.Child("failedAuthPerMinute"), rl.FailedAuthPerMinute, "must not be negative (0 disables the limit)")}
	case rl.FailedAuthPerMinute == 0:
		return nil // disabled: the other fields are unused
	}
	var errs field.ErrorList
	if rl.FailedAuthBurst < 1 {
		errs = append(errs, field.Invalid(path.Child("failedAuthBurst"), rl.FailedAuthBurst, "must be at least 1"))
	}
	if rl.MaxTrackedKeys < 100 {
		errs = append(errs, field.Invalid(path.Child("maxTrackedKeys"), rl.MaxTrackedKeys, "must be at least 100"))
	}
	return errs
}

func (a *Audit) validate(path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if a.SuccessSampleRate < 0 || a.SuccessSampleRate > 1 {
		errs = append(errs, field.Invalid(path.Child("successSampleRate"), a.SuccessSampleRate, "must be between 0 and 1"))
	}
	if a.RefusalsPerSecond < 1 {
		errs = append(errs, field.Invalid(path.Child("refusalsPerSecond"), a.RefusalsPerSecond, "must be at least 1"))
	}
	return errs
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

// valid reports whether d was read as a positive duration.
func (d Duration) valid() bool { return d.invalid == "" && d.Duration > 0 }

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
