package signing

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	. "github.com/onsi/gomega"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// multiKeySet returns current (ES256), next (EdDSA, published, activates
// later), retired (RS256, retired, expires later) and expired (ES256) keys.
func multiKeySet(t *testing.T) (ks *KeySet, current, next, retired, expired *Key) {
	t.Helper()
	retired = mustGenerate(t, RS256, t0.Add(-48*time.Hour))
	retired.ActivatesAt = t0.Add(-47 * time.Hour)
	retired.RetiredAt = t0.Add(-time.Hour)
	retired.ExpiresAt = t0.Add(time.Hour)
	expired = mustGenerate(t, ES256, t0.Add(-96*time.Hour))
	expired.RetiredAt = t0.Add(-48 * time.Hour)
	expired.ExpiresAt = t0.Add(-24 * time.Hour)
	current = mustGenerate(t, ES256, t0.Add(-24*time.Hour))
	current.ActivatesAt = t0.Add(-time.Hour)
	next = mustGenerate(t, EdDSA, t0)
	next.ActivatesAt = t0.Add(24 * time.Hour)
	ks = &KeySet{CurrentID: current.ID, Keys: []*Key{next, retired, expired, current}}
	return ks, current, next, retired, expired
}

type privateKey interface {
	Public() crypto.PublicKey
	Equal(crypto.PrivateKey) bool
}

func expectSameKeySet(g Gomega, got, want *KeySet) {
	g.Expect(got.CurrentID).To(Equal(want.CurrentID))
	g.Expect(got.Keys).To(HaveLen(len(want.Keys)))
	for i, w := range want.Keys {
		k := got.Keys[i]
		g.Expect(k.ID).To(Equal(w.ID))
		g.Expect(k.Algorithm).To(Equal(w.Algorithm))
		g.Expect(k.Private.(privateKey).Equal(w.Private)).To(BeTrue(), "private key %d", i)
		for _, tm := range []struct{ got, want time.Time }{
			{k.CreatedAt, w.CreatedAt}, {k.ActivatesAt, w.ActivatesAt},
			{k.RetiredAt, w.RetiredAt}, {k.ExpiresAt, w.ExpiresAt},
		} {
			// Exact struct equality: same instant, UTC location, no monotonic part.
			g.Expect(tm.got).To(Equal(tm.want))
		}
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	for _, alg := range allAlgorithms {
		t.Run(string(alg), func(t *testing.T) {
			g := NewWithT(t)
			k := fixtureKey(t, alg)
			ks := &KeySet{CurrentID: k.ID, Keys: []*Key{k}}
			data, err := ks.Encode()
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(data).To(HaveLen(1))
			g.Expect(data).To(HaveKey(SecretKey))
			got, err := Decode(data)
			g.Expect(err).NotTo(HaveOccurred())
			expectSameKeySet(g, got, ks)
			g.Expect(got.Current().ID).To(Equal(k.ID))

			var doc map[string]any
			g.Expect(json.Unmarshal(data[SecretKey], &doc)).To(Succeed())
			g.Expect(doc).To(HaveKeyWithValue("version", BeEquivalentTo(1)))
			key := doc["keys"].([]any)[0].(map[string]any)
			g.Expect(key).To(HaveKeyWithValue("createdAt", "2026-01-02T03:04:05Z"))
			g.Expect(key).NotTo(HaveKey("activatesAt"), "zero times are omitted")
			g.Expect(key).NotTo(HaveKey("retiredAt"))
			g.Expect(key).NotTo(HaveKey("expiresAt"))
			g.Expect(key["privateKey"]).To(HavePrefix("-----BEGIN PRIVATE KEY-----\n"))
		})
	}

	t.Run("multi-key", func(t *testing.T) {
		g := NewWithT(t)
		ks, current, _, _, _ := multiKeySet(t)
		data, err := ks.Encode()
		g.Expect(err).NotTo(HaveOccurred())
		got, err := Decode(data)
		g.Expect(err).NotTo(HaveOccurred())
		expectSameKeySet(g, got, ks)
		g.Expect(got.Current()).To(HaveField("ID", current.ID))
		// Encoding is stable.
		again, err := got.Encode()
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(string(again[SecretKey])).To(Equal(string(data[SecretKey])))
	})

	t.Run("times normalised to UTC seconds", func(t *testing.T) {
		g := NewWithT(t)
		k := *fixtureKey(t, ES256)
		k.CreatedAt = time.Date(2026, 1, 2, 4, 4, 5, 999_999_999, time.FixedZone("CET", 3600))
		k.ExpiresAt = time.Now() // carries a monotonic reading
		data, err := (&KeySet{CurrentID: k.ID, Keys: []*Key{&k}}).Encode()
		g.Expect(err).NotTo(HaveOccurred())
		got, err := Decode(data)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(got.Keys[0].CreatedAt).To(Equal(t0))
		g.Expect(got.Keys[0].ExpiresAt).To(Equal(k.ExpiresAt.UTC().Truncate(time.Second).Round(0)))
	})
}

func TestKeySetAccessors(t *testing.T) {
	g := NewWithT(t)
	ks, current, next, _, _ := multiKeySet(t)
	g.Expect(ks.Current()).To(BeIdenticalTo(current))
	g.Expect(ks.Find(next.ID)).To(BeIdenticalTo(next))
	g.Expect(ks.Find("nope")).To(BeNil())
	g.Expect((&KeySet{}).Current()).To(BeNil())
	g.Expect((*KeySet)(nil).Current()).To(BeNil())
	g.Expect((&KeySet{CurrentID: "gone", Keys: ks.Keys}).Current()).To(BeNil())
}

func TestValidate(t *testing.T) {
	es := fixtureKey(t, ES256)
	ed := fixtureKey(t, EdDSA)
	withID := func(k *Key, id string) *Key { c := *k; c.ID = id; return &c }
	withAlg := func(k *Key, alg Algorithm) *Key { c := *k; c.Algorithm = alg; return &c }
	tests := []struct {
		name string
		ks   *KeySet
		want error
	}{
		{"ok", &KeySet{CurrentID: es.ID, Keys: []*Key{es, ed}}, nil},
		{"nil", nil, ErrInvalidKeySet},
		{"empty", &KeySet{}, ErrInvalidKeySet},
		{"no current", &KeySet{Keys: []*Key{es}}, ErrInvalidKeySet},
		{"current missing", &KeySet{CurrentID: ed.ID, Keys: []*Key{es}}, ErrInvalidKeySet},
		{"duplicate", &KeySet{CurrentID: es.ID, Keys: []*Key{es, es}}, ErrInvalidKeySet},
		{"nil key", &KeySet{CurrentID: es.ID, Keys: []*Key{es, nil}}, ErrInvalidKeySet},
		{"nil private", &KeySet{CurrentID: es.ID, Keys: []*Key{{ID: es.ID, Algorithm: ES256}}}, ErrInvalidKeySet},
		{"kid mismatch", &KeySet{CurrentID: "x", Keys: []*Key{withID(es, "x")}}, ErrKeyIDMismatch},
		{"alg mismatch", &KeySet{CurrentID: es.ID, Keys: []*Key{withAlg(es, EdDSA)}}, ErrAlgorithmMismatch},
		{"bad alg", &KeySet{CurrentID: es.ID, Keys: []*Key{withAlg(es, "ES384")}}, ErrUnsupportedAlgorithm},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			err := tt.ks.Validate()
			if tt.want == nil {
				g.Expect(err).NotTo(HaveOccurred())
				return
			}
			g.Expect(err).To(MatchError(tt.want))
			_, encErr := tt.ks.Encode()
			g.Expect(encErr).To(MatchError(tt.want), "Encode validates too")
		})
	}
}

func pemPKCS8(t *testing.T, priv any) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

func TestDecodeErrors(t *testing.T) {
	es := fixtureKey(t, ES256)
	ed := fixtureKey(t, EdDSA)
	good, err := (&KeySet{CurrentID: es.ID, Keys: []*Key{es, ed}}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	var base document
	if err := json.Unmarshal(good[SecretKey], &base); err != nil {
		t.Fatal(err)
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	esPEM, edPEM := base.Keys[0].PrivateKey, base.Keys[1].PrivateKey
	esDER, _ := pem.Decode([]byte(esPEM))

	// mutate returns Secret data for a copy of base changed by f.
	mutate := func(f func(d *document)) map[string][]byte {
		d := base
		d.Keys = append([]documentKey(nil), base.Keys...)
		f(&d)
		b, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		return map[string][]byte{SecretKey: b}
	}
	raw := func(s string) map[string][]byte { return map[string][]byte{SecretKey: []byte(s)} }

	tests := []struct {
		name string
		data map[string][]byte
		want error
	}{
		{"nil data", nil, ErrMissingData},
		{"missing key", map[string][]byte{"other": good[SecretKey]}, ErrMissingData},
		{"empty value", raw(""), ErrMissingData},
		{"bad JSON", raw(`{"version":1,`), ErrMalformed},
		{"bad JSON with key material", raw(`{"version":1,"keys":[{"privateKey":` + esPEM[:40] + `}]}`), ErrMalformed},
		{"wrong JSON type", raw(`{"version":1,"current":7}`), ErrMalformed},
		{"not an object", raw(`[]`), ErrMalformed},
		{"missing version", raw(`{"current":"x","keys":[]}`), ErrUnsupportedVersion},
		{"unknown version", mutate(func(d *document) { d.Version = 2 }), ErrUnsupportedVersion},
		{"not PEM", mutate(func(d *document) { d.Keys[0].PrivateKey = "not a pem" }), ErrMalformed},
		{"wrong PEM type", mutate(func(d *document) {
			d.Keys[0].PrivateKey = string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: esDER.Bytes}))
		}), ErrMalformed},
		{"bad PKCS8", mutate(func(d *document) {
			d.Keys[0].PrivateKey = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: esDER.Bytes[:40]}))
		}), ErrMalformed},
		{"trailing PEM data", mutate(func(d *document) { d.Keys[0].PrivateKey = esPEM + edPEM }), ErrMalformed},
		{"bad timestamp", mutate(func(d *document) { d.Keys[1].ExpiresAt = "tomorrow" }), ErrMalformed},
		{"unsupported alg", mutate(func(d *document) { d.Keys[0].Alg = "HS256" }), ErrUnsupportedAlgorithm},
		{"alg/key mismatch", mutate(func(d *document) { d.Keys[0].Alg = "EdDSA" }), ErrAlgorithmMismatch},
		{"RS256 with EC key", mutate(func(d *document) { d.Keys[0].Alg = "RS256" }), ErrAlgorithmMismatch},
		{"ES256 with P-384 key", mutate(func(d *document) { d.Keys[0].PrivateKey = pemPKCS8(t, p384) }), ErrAlgorithmMismatch},
		{"RS256 with 1024-bit key", mutate(func(d *document) {
			d.Keys[0].Alg = "RS256"
			d.Keys[0].PrivateKey = pemPKCS8(t, rsa1024)
		}), ErrAlgorithmMismatch},
		{"kid mismatch", mutate(func(d *document) { d.Keys[1].Kid = d.Keys[0].Kid[1:] + "A" }), ErrKeyIDMismatch},
		{"swapped keys", mutate(func(d *document) {
			d.Keys[0].PrivateKey, d.Keys[1].PrivateKey = d.Keys[1].PrivateKey, d.Keys[0].PrivateKey
			d.Keys[0].Alg, d.Keys[1].Alg = d.Keys[1].Alg, d.Keys[0].Alg
		}), ErrKeyIDMismatch},
		{"no current", mutate(func(d *document) { d.Current = "" }), ErrInvalidKeySet},
		{"unknown current", mutate(func(d *document) { d.Current = "abc" }), ErrInvalidKeySet},
		{"duplicate kid", mutate(func(d *document) { d.Keys[1] = d.Keys[0] }), ErrInvalidKeySet},
	}
	// Lines of base64 key material that must never appear in an error.
	var secrets []string
	for _, p := range []string{esPEM, edPEM} {
		for _, line := range strings.Split(p, "\n") {
			if line != "" && !strings.HasPrefix(line, "-----") {
				secrets = append(secrets, line[:min(len(line), 16)])
			}
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			ks, err := Decode(tt.data)
			g.Expect(ks).To(BeNil())
			g.Expect(err).To(MatchError(tt.want))
			msg := err.Error()
			g.Expect(msg).To(HavePrefix("decode key set: "))
			g.Expect(msg).To(Equal(strings.ToLower(msg[:1]) + msg[1:]))
			for _, s := range secrets {
				g.Expect(msg).NotTo(ContainSubstring(s), "error leaks key material")
			}
			t.Log(msg)
		})
	}
}

func TestDecodeIgnoresUnknownFields(t *testing.T) {
	g := NewWithT(t)
	k := fixtureKey(t, EdDSA)
	data, err := (&KeySet{CurrentID: k.ID, Keys: []*Key{k}}).Encode()
	g.Expect(err).NotTo(HaveOccurred())
	var doc map[string]any
	g.Expect(json.Unmarshal(data[SecretKey], &doc)).To(Succeed())
	doc["futureField"] = true
	doc["keys"].([]any)[0].(map[string]any)["note"] = "x"
	b, _ := json.Marshal(doc)
	ks, err := Decode(map[string][]byte{SecretKey: b})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ks.Current().ID).To(Equal(k.ID))
}

func TestJWKS(t *testing.T) {
	g := NewWithT(t)
	ks, current, next, retired, expired := multiKeySet(t)

	out, err := ks.JWKS(t0)
	g.Expect(err).NotTo(HaveOccurred())

	var set jose.JSONWebKeySet
	g.Expect(json.Unmarshal(out, &set)).To(Succeed())
	// Current first, then by CreatedAt: retired (t0-48h), next (t0).
	want := []*Key{current, retired, next}
	g.Expect(set.Keys).To(HaveLen(len(want)))
	for i, k := range want {
		jk := set.Keys[i]
		g.Expect(jk.KeyID).To(Equal(k.ID))
		g.Expect(jk.Algorithm).To(Equal(string(k.Algorithm)))
		g.Expect(jk.Use).To(Equal("sig"))
		g.Expect(jk.IsPublic()).To(BeTrue())
		g.Expect(jk.Valid()).To(BeTrue())
		pub := k.Private.Public().(interface{ Equal(crypto.PublicKey) bool })
		g.Expect(pub.Equal(jk.Key)).To(BeTrue(), "key %s", k.ID)
	}
	g.Expect(set.Key(expired.ID)).To(BeEmpty(), "expired key excluded")

	// Raw members: only public ones.
	var rawSet struct {
		Keys []map[string]any `json:"keys"`
	}
	g.Expect(json.Unmarshal(out, &rawSet)).To(Succeed())
	allowed := map[string][]string{
		"EC":  {"kty", "kid", "alg", "use", "crv", "x", "y"},
		"RSA": {"kty", "kid", "alg", "use", "n", "e"},
		"OKP": {"kty", "kid", "alg", "use", "crv", "x"},
	}
	for _, m := range rawSet.Keys {
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi"} {
			g.Expect(m).NotTo(HaveKey(private))
		}
		members := make([]string, 0, len(m))
		for name := range m {
			members = append(members, name)
		}
		g.Expect(members).To(ConsistOf(allowed[m["kty"].(string)]))
	}
	g.Expect(rawSet.Keys[2]).To(HaveKeyWithValue("crv", "Ed25519"))
	g.Expect(rawSet.Keys[1]).To(HaveKeyWithValue("e", "AQAB"))

	// Deterministic output.
	again, err := ks.JWKS(t0)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(again).To(Equal(out))

	// A key is dropped exactly at ExpiresAt; a retired key stays until then.
	atExpiry, err := ks.JWKS(retired.ExpiresAt)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(atExpiry)).NotTo(ContainSubstring(retired.ID))
	before, err := ks.JWKS(retired.ExpiresAt.Add(-time.Second))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(before)).To(ContainSubstring(retired.ID))

	// Empty set renders as an empty array, not null.
	empty, err := (&KeySet{}).JWKS(t0)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(empty)).To(Equal(`{"keys":[]}`))
}

func TestJWKSAlwaysIncludesCurrent(t *testing.T) {
	g := NewWithT(t)
	k := *fixtureKey(t, ES256)
	k.ExpiresAt = t0.Add(-time.Hour)
	out, err := (&KeySet{CurrentID: k.ID, Keys: []*Key{&k}}).JWKS(t0)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(out)).To(ContainSubstring(k.ID))
}
