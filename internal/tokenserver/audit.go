package tokenserver

import (
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/time/rate"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/internal/config"
)

// AuditLoggerName is the name of the logger of audit records: one structured record
// per token issued and per token request refused.
const AuditLoggerName = "audit"

// newAuditLogger writes audit records as JSON lines to w, under the logger name
// AuditLoggerName, with typed fields (no per-record reflection). Unlike the manager's
// logger it never samples: zap's production sampler keeps only the first 100 records a
// second with the same message, and an audit trail that silently loses records under
// load is none. Its volume is bounded by the auditor instead (audit.successSampleRate,
// audit.refusalsPerSecond).
func newAuditLogger(w io.Writer) *zap.Logger {
	enc := zapcore.NewJSONEncoder(zapcore.EncoderConfig{
		TimeKey: "ts", LevelKey: "level", NameKey: "logger", MessageKey: "msg",
		EncodeTime: zapcore.RFC3339NanoTimeEncoder, EncodeLevel: zapcore.LowercaseLevelEncoder,
		EncodeDuration: zapcore.StringDurationEncoder, LineEnding: zapcore.DefaultLineEnding,
	})
	return zap.New(zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), zapcore.InfoLevel)).Named(AuditLoggerName)
}

// exchange is what one token request presented and how it ended: the content of its
// audit record. It never holds a secret, an assertion or a token.
type exchange struct {
	// clientID is the client_id as presented (or taken from an assertion's sub).
	clientID string
	// credential is how the request authenticated: client_secret, client_assertion,
	// grant_token (the token of a JWT-bearer grant or a token exchange) or none.
	credential string
	// method is the client's authentication method, once it is known.
	method oauthv1alpha1.AuthenticationMethod
	// source is the client address.
	source   string
	audience string
	scope    string
	jti      string
	exp      int64
	// jkt is the thumbprint of the DPoP key an issued token is bound to, "" for a
	// bearer token.
	jkt string
}

// String names a presented credential in audit records.
func (c credentialKind) String() string {
	switch c {
	case credSecret:
		return "client_secret"
	case credAssertion:
		return "client_assertion"
	case credGrant:
		return "grant_token"
	}
	return "none"
}

// auditor writes the audit records. Issued tokens are sampled
// (audit.successSampleRate); refusals are all recorded up to audit.refusalsPerSecond for
// requests that named an existing client, and as many again for all others, so a flood
// of bad requests writes at most twice that many records a second; the next record of
// the same kind says how many were left out ("suppressed").
type auditor struct {
	log     *zap.Logger
	enabled bool
	sample  float64
	// Refusals of requests that named an existing client, and all other refusals
	// (malformed requests, unknown clients, throttled ones) have a budget each, so a
	// flood of cheap junk cannot crowd out the record of a real client's failures.
	known, other refusalBudget
	replica      string
}

// refusalBudget bounds the refusal records per second; what it leaves out is counted
// and reported by its next record.
type refusalBudget struct {
	limiter    *rate.Limiter
	suppressed atomic.Int64
}

// newAuditor writes records to w (nil: none).
func newAuditor(cfg config.Audit, w io.Writer, replica string) *auditor {
	if w == nil {
		w = io.Discard
		cfg.Enabled = false
	}
	a := &auditor{log: newAuditLogger(w), enabled: cfg.Enabled, sample: cfg.SuccessSampleRate, replica: replica}
	a.known.limiter = rate.NewLimiter(rate.Limit(cfg.RefusalsPerSecond), cfg.RefusalsPerSecond)
	a.other.limiter = rate.NewLimiter(rate.Limit(cfg.RefusalsPerSecond), cfg.RefusalsPerSecond)
	return a
}

// maxAuditClientID bounds a presented value that cannot be a client_id, as recorded:
// enough to recognise it, too little to reveal a secret pasted into the wrong field.
const maxAuditClientID = 8

// record writes the audit record of one exchange; oerr is nil for an issued token.
func (a *auditor) record(x *exchange, oerr *oauthError, now time.Time) {
	if !a.enabled {
		return
	}
	if oerr == nil && a.sample < 1 && rand.Float64() >= a.sample {
		return
	}
	var budget *refusalBudget
	if oerr != nil {
		budget = &a.other
		if x.method != "" {
			budget = &a.known
		}
		if !budget.limiter.AllowN(now, 1) {
			budget.suppressed.Add(1)
			return
		}
	}
	fp := auditFields.Get().(*[]zap.Field)
	defer func() { *fp = (*fp)[:0]; auditFields.Put(fp) }()
	// zap.Time, not a formatted string: the encoder writes the same RFC 3339 text
	// without allocating it.
	fields := append(*fp, zap.Time("time", now.UTC()), zap.String("client_id", auditClientID(x.clientID)),
		zap.String("credential", x.credential), zap.String("source", x.source), zap.String("replica", a.replica))
	if x.method != "" {
		fields = append(fields, zap.String("method", string(x.method)))
	}
	if budget != nil {
		if n := budget.suppressed.Swap(0); n > 0 {
			fields = append(fields, zap.Int64("suppressed", n))
		}
	}
	if oerr != nil {
		fields = append(fields, zap.String("outcome", "refused"), zap.String("error", oerr.code), zap.Int("status", oerr.status),
			zap.String("reason", string(oerr.reason)))
		if x.audience != "" {
			fields = append(fields, zap.String("audience", x.audience))
		}
		a.log.Info("token request refused", fields...)
		*fp = fields
		return
	}
	fields = append(fields, zap.String("outcome", "issued"), zap.String("audience", x.audience), zap.String("scope", x.scope),
		zap.String("jti", x.jti), zap.Time("exp", time.Unix(x.exp, 0).UTC()))
	if x.jkt != "" {
		fields = append(fields, zap.String("dpop_jkt", x.jkt))
	}
	a.log.Info("token issued", fields...)
	*fp = fields
}

// auditFields recycles the field lists of audit records: the logger encodes a record's
// fields before Info returns and keeps none, and a list a request allocated was a
// kilobyte of every token request's garbage (issue 21).
var auditFields = sync.Pool{New: func() any { f := make([]zap.Field, 0, 16); return &f }}

// auditClientID is id as recorded: whole when it can name a client, else truncated
// and with every character outside [a-z0-9.-] replaced, so that no record carries
// what a caller sent in its place (a secret pasted into the wrong field, control
// characters, megabytes).
func auditClientID(id string) string {
	if ns, name, ok := oauthv1alpha1.ParseClientID(id); ok && len(ns) <= 63 && len(name) <= 253 && plain(id) {
		return id
	}
	truncated := len(id) > maxAuditClientID
	if truncated {
		id = id[:maxAuditClientID]
	}
	out := strings.Map(func(r rune) rune {
		if r == '.' || r == '-' || (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			return r
		}
		return '?'
	}, id)
	if truncated {
		out += "..."
	}
	return out
}

func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '.' && c != '-' && (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}
