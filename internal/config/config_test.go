package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/oauth-client-operator/oauth-client-operator/internal/signing"
)

func TestParseDefaults(t *testing.T) {
	t.Parallel()
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
	if cfg.Signing.Algorithm != signing.ES256 || cfg.TokenServer.Address != ":8443" {
		t.Errorf("defaults not applied: %+v", cfg)
	}
	if cfg.TokenServer.APIServerGrace.Duration != 5*time.Minute {
		t.Errorf("apiServerGrace = %s, want 5m", cfg.TokenServer.APIServerGrace)
	}
	if cfg.Clients.RotateSecretMinInterval.Duration != time.Minute {
		t.Errorf("clients.rotateSecretMinInterval = %s, want 1m", cfg.Clients.RotateSecretMinInterval)
	}
}

func TestParseOverrides(t *testing.T) {
	t.Parallel()
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
	if cfg.Signing.Algorithm != signing.EdDSA || cfg.TokenServer.Address != "127.0.0.1:9443" {
		t.Errorf("overrides not applied: %+v", cfg)
	}
}

// Every refusal names its field path; a file with one problem yields exactly one error.
func TestParseErrorsNameTheField(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml, want string
	}{
		{"missing issuer", "tokens: {defaultTTL: 1h}", "issuer: Required value"},
		{"relative issuer", "issuer: oauth.example.com", `issuer: Invalid value: "oauth.example.com": is not an absolute http(s) URL`},
		{"issuer with query", "issuer: https://a.example/?x=1", "issuer: Invalid value: \"https://a.example/?x=1\": must not have a query"},
		{"issuer with user info", "issuer: https://u:p@a.example", "issuer: Invalid value: \"https://u:p@a.example\": must not have a query, fragment or user info"},
		{"unknown field", "issuer: https://a.example\ntokens: {defaultTTl: 1h}", `unknown field "tokens.defaultTTl"`},
		{"bad duration", "issuer: https://a.example\ntokens: {defaultTTL: soon}", `tokens.defaultTTL: Invalid value: "soon": is not a duration`},
		{"negative duration", "issuer: https://a.example\ntokens: {defaultTTL: -1h}", `tokens.defaultTTL: Invalid value: "-1h0m0s": must be a positive duration`},
		{"fractional seconds", "issuer: https://a.example\ntokens: {defaultTTL: 1.5s}", `tokens.defaultTTL: Invalid value: "1.5s": lifetimes must be whole seconds`},
		{"fractional max", "issuer: https://a.example\ntokens: {maxTTL: 7200.5}", `tokens.maxTTL: Invalid value: "2h0m0.5s": lifetimes must be whole seconds`},
		{"default above max", "issuer: https://a.example\ntokens: {defaultTTL: 2h, maxTTL: 1h}", `tokens.defaultTTL: Invalid value: "2h0m0s": exceeds tokens.maxTTL 1h0m0s`},
		{"bad algorithm", "issuer: https://a.example\nsigning: {algorithm: HS256}", `signing.algorithm: Invalid value: "HS256": unsupported signing algorithm`},
		{"algorithm in lower case", "issuer: https://a.example\nsigning: {algorithm: es256}", `signing.algorithm: Invalid value: "es256"`},
		{"no signing Secret", "issuer: https://a.example\nsigning: {secretName: ''}", "signing.secretName: Required value"},
		{"bad address", "issuer: https://a.example\ntokenServer: {address: nope}", `tokenServer.address: Invalid value: "nope": is not host:port`},
		{"cert without key", "issuer: https://a.example\ntokenServer: {tls: {certFile: /c.pem}}", "tokenServer.tls.keyFile: Required value: certFile and keyFile must be set together"},
		{"key without cert", "issuer: https://a.example\ntokenServer: {tls: {keyFile: /k.pem}}", "tokenServer.tls.certFile: Required value: certFile and keyFile must be set together"},
		{"wrong type", "issuer: https://a.example\ntokenServer: {maxBodyBytes: lots}", "tokenServer.maxBodyBytes: must be a int64"},
		{"bad proxy", "issuer: https://a.example\ntokenServer: {trustedProxies: [10.0.0.0/8, proxy.example]}", `tokenServer.trustedProxies[1]: Invalid value: "proxy.example": is not an IP address or CIDR`},
		{"no connections", "issuer: https://a.example\ntokenServer: {maxConnections: 0}", "tokenServer.maxConnections: Invalid value: 0: must be at least 1"},
		{"body limit", "issuer: https://a.example\ntokenServer: {maxBodyBytes: 10}", "tokenServer.maxBodyBytes: Invalid value: 10: must be between 1024 and 1048576"},
		{"zero API server grace", "issuer: https://a.example\ntokenServer: {apiServerGrace: 0s}", "tokenServer.apiServerGrace: Invalid value: \"0s\": must be a positive duration"},
		{"bad API server grace", "issuer: https://a.example\ntokenServer: {apiServerGrace: forever}", `tokenServer.apiServerGrace: Invalid value: "forever": is not a duration`},
		{"not yaml", "issuer: [unclosed", "invalid YAML"},
		{"propagation shorter than JWKS caching", "issuer: https://a.example\ntokenServer: {jwksMaxAge: 10m}\nsigning: {propagationDelay: 1m}", `signing.propagationDelay: Invalid value: "1m0s": is shorter than tokenServer.jwksMaxAge 10m0s`},
		{"interval within propagation", "issuer: https://a.example\nsigning: {rotationInterval: 5m}", `signing.rotationInterval: Invalid value: "5m0s": must be longer than signing.propagationDelay`},
		{"negative failure rate", "issuer: https://a.example\nrateLimit: {failedAuthPerMinute: -1}", "rateLimit.failedAuthPerMinute: Invalid value: -1: must not be negative"},
		{"no burst", "issuer: https://a.example\nrateLimit: {failedAuthBurst: 0}", "rateLimit.failedAuthBurst: Invalid value: 0: must be at least 1"},
		{"few tracked keys", "issuer: https://a.example\nrateLimit: {maxTrackedKeys: 99}", "rateLimit.maxTrackedKeys: Invalid value: 99: must be at least 100"},
		{"sample rate above 1", "issuer: https://a.example\naudit: {successSampleRate: 1.5}", "audit.successSampleRate: Invalid value: 1.5: must be between 0 and 1"},
		{"negative sample rate", "issuer: https://a.example\naudit: {successSampleRate: -0.1}", "audit.successSampleRate: Invalid value: -0.1: must be between 0 and 1"},
		{"no refusal records", "issuer: https://a.example\naudit: {refusalsPerSecond: 0}", "audit.refusalsPerSecond: Invalid value: 0: must be at least 1"},
		{"small replay cache", "issuer: https://a.example\nprivateKeyJWT: {replayCacheSize: 999}", "privateKeyJWT.replayCacheSize: Invalid value: 999: must be at least 1000"},
		{"small DPoP replay cache", "issuer: https://a.example\ndpop: {replayCacheSize: 10}", "dpop.replayCacheSize: Invalid value: 10: must be at least 1000"},
		{"long DPoP proof age", "issuer: https://a.example\ndpop: {proofMaxAge: 10m}", `dpop.proofMaxAge: Invalid value: "10m0s": must be at most 5m`},
		{"zero DPoP proof age", "issuer: https://a.example\ndpop: {proofMaxAge: 0s}", `dpop.proofMaxAge: Invalid value: "0s": must be a positive duration`},
		{"zero assertion lifetime", "issuer: https://a.example\nprivateKeyJWT: {maxAssertionLifetime: 0}", `privateKeyJWT.maxAssertionLifetime: Invalid value: "0s": must be a positive duration`},
		{"relative workload issuer", "issuer: https://a.example\nworkloadIdentity: {issuer: kubernetes.default.svc}", `workloadIdentity.issuer: Invalid value: "kubernetes.default.svc": is not an absolute URL`},
		{"zero ServiceAccount token lifetime", "issuer: https://a.example\nworkloadIdentity: {maxTokenLifetime: 0s}", `workloadIdentity.maxTokenLifetime: Invalid value: "0s": must be a positive duration`},
		{"zero rotation request interval", "issuer: https://a.example\nclients: {rotateSecretMinInterval: 0s}", `clients.rotateSecretMinInterval: Invalid value: "0s": must be a positive duration`},
		{"bad rotation request interval", "issuer: https://a.example\nclients: {rotateSecretMinInterval: often}", `clients.rotateSecretMinInterval: Invalid value: "often": is not a duration`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tt.yaml))
			if err == nil {
				t.Fatalf("Parse accepted %q", tt.yaml)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q, want it to contain %q", err, tt.want)
			}
			var agg utilerrors.Aggregate
			if errors.As(err, &agg) && len(agg.Errors()) != 1 {
				t.Errorf("%d errors for one problem: %v", len(agg.Errors()), err)
			}
		})
	}
}

// A file with several problems gets them all at once, each naming its field, in the
// order of the file's sections; a rule between two fields is left out when one of them
// is already wrong on its own.
func TestParseReportsEveryError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"one per section", `
issuer: ftp://x
tokenServer: {address: nope, maxConnections: 0, trustedProxies: [a, 10.0.0.1, b]}
tokens: {defaultTTL: 90m, maxTTL: 1h}
signing: {algorithm: HS256, rotationInterval: 1m}
rateLimit: {failedAuthBurst: 0, maxTrackedKeys: 1}
audit: {successSampleRate: 2, refusalsPerSecond: 0}
privateKeyJWT: {replayCacheSize: 1}
workloadIdentity: {issuer: "not a url"}
clients: {rotateSecretMinInterval: -1m}
`, []string{
			"issuer", "tokenServer.address", "tokenServer.trustedProxies[0]", "tokenServer.trustedProxies[2]",
			"tokenServer.maxConnections", "clients.rotateSecretMinInterval", "tokens.defaultTTL", "signing.algorithm",
			"signing.rotationInterval", "rateLimit.failedAuthBurst", "rateLimit.maxTrackedKeys",
			"audit.successSampleRate", "audit.refusalsPerSecond", "workloadIdentity.issuer", "privateKeyJWT.replayCacheSize",
		}},
		{"unknown fields and invalid values together", "issuer: ''\ntokens: {defaultTL: 1h}\nsignng: {}\ntokenServer: {maxConnections: 0}",
			[]string{`unknown field "tokens.defaultTL"`, `unknown field "signng"`, "issuer", "tokenServer.maxConnections"}},
		{"a bad duration hides the rules that compare it", "issuer: https://a.example\ntokens: {defaultTTL: soon, maxTTL: 1s}\nsigning: {propagationDelay: never}",
			[]string{"tokens.defaultTTL", "signing.propagationDelay"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tt.yaml))
			var agg utilerrors.Aggregate
			if !errors.As(err, &agg) {
				t.Fatalf("Parse error = %v, want an aggregate of every error", err)
			}
			var got []string
			for _, e := range agg.Errors() {
				var fe *field.Error
				if errors.As(e, &fe) {
					got = append(got, fe.Field)
				} else {
					got = append(got, e.Error())
				}
			}
			slices.Sort(got)
			want := slices.Clone(tt.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("errors name\n  %q\nwant\n  %q\n(%v)", got, want, err)
			}
		})
	}
}

// Validate's list is empty for the defaults with an issuer: nothing to fix.
func TestDefaultIsValid(t *testing.T) {
	t.Parallel()
	cfg := Default()
	cfg.Issuer = "https://oauth.example.com/"
	if errs := cfg.Validate(); len(errs) != 0 {
		t.Fatalf("defaults refused: %v", errs)
	}
	if cfg.Issuer != "https://oauth.example.com" {
		t.Errorf("issuer = %q, want the trailing slash removed", cfg.Issuer)
	}
	empty := Default()
	if errs := empty.Validate(); len(errs) != 1 || errs[0].Field != "issuer" || errs[0].Type != field.ErrorTypeRequired {
		t.Errorf("without an issuer: %v, want issuer required alone", errs)
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte("issuer: ftp://x\ntokens: {maxTTL: 0}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "issuer:") || !strings.Contains(err.Error(), "tokens.maxTTL:") {
		t.Fatalf("Load error = %v, want the path and both fields", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "absent.yaml")); err == nil {
		t.Fatal("Load of a missing file succeeded")
	}
}
