package signing

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strings"
	"sync"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	. "github.com/onsi/gomega"
)

// claims is a realistic RFC 9068 access token claims set (~300 bytes).
var claims = []byte(`{"iss":"https://oauth.example.com/realms/prod","sub":"client-7f3c2a9e","aud":"https://api.example.com","exp":1767326645,"iat":1767323045,"nbf":1767323045,"jti":"0b8f5c1e-6a7d-4c3b-9e2f-1d4a5b6c7d8e","client_id":"client-7f3c2a9e","azp":"client-7f3c2a9e","scope":"orders:read orders:write inventory:read"}`)

var joseAlgs = []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.EdDSA}

func verifyWithJose(tb testing.TB, token string, pub crypto.PublicKey) (*jose.JSONWebSignature, []byte, error) {
	tb.Helper()
	jws, err := jose.ParseSignedCompact(token, joseAlgs)
	if err != nil {
		tb.Fatalf("parse token: %v", err)
	}
	payload, err := jws.Verify(pub)
	return jws, payload, err
}

func TestSignerVerifiesWithGoJose(t *testing.T) {
	for _, alg := range allAlgorithms {
		t.Run(string(alg), func(t *testing.T) {
			g := NewWithT(t)
			k := fixtureKey(t, alg)
			s, err := NewSigner(k)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(s.KeyID()).To(Equal(k.ID))
			g.Expect(s.Algorithm()).To(Equal(alg))

			token, err := s.Sign(claims)
			g.Expect(err).NotTo(HaveOccurred())
			parts := strings.Split(token, ".")
			g.Expect(parts).To(HaveLen(3))
			g.Expect(len(token)).To(Equal(len(parts[0]) + len(parts[1]) + len(parts[2]) + 2))

			jws, payload, err := verifyWithJose(t, token, k.Private.Public())
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(payload).To(Equal(claims))
			h := jws.Signatures[0].Protected
			g.Expect(h.Algorithm).To(Equal(string(alg)))
			g.Expect(h.KeyID).To(Equal(k.ID))
			g.Expect(h.ExtraHeaders[jose.HeaderType]).To(Equal("at+jwt"))

			rawHeader, err := base64.RawURLEncoding.DecodeString(parts[0])
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(string(rawHeader)).To(Equal(`{"alg":"` + string(alg) + `","kid":"` + k.ID + `","typ":"at+jwt"}`))

			// Signatures are fresh for the randomised algorithms, but always verify.
			token2, err := s.Sign(claims)
			g.Expect(err).NotTo(HaveOccurred())
			_, _, err = verifyWithJose(t, token2, k.Private.Public())
			g.Expect(err).NotTo(HaveOccurred())
		})
	}
}

func TestSignerWrongKeyFails(t *testing.T) {
	for _, alg := range allAlgorithms {
		t.Run(string(alg), func(t *testing.T) {
			g := NewWithT(t)
			s, err := NewSigner(fixtureKey(t, alg))
			g.Expect(err).NotTo(HaveOccurred())
			token, err := s.Sign(claims)
			g.Expect(err).NotTo(HaveOccurred())

			other := mustGenerate(t, alg, t0)
			_, _, err = verifyWithJose(t, token, other.Private.Public())
			g.Expect(err).To(HaveOccurred(), "same algorithm, different key")
			for _, a := range allAlgorithms {
				if a != alg {
					_, _, err = verifyWithJose(t, token, fixtureKey(t, a).Private.Public())
					g.Expect(err).To(HaveOccurred(), "key of %s", a)
				}
			}
			// A tampered payload fails too.
			parts := strings.Split(token, ".")
			parts[1] = base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"mallory"}`))
			_, _, err = verifyWithJose(t, strings.Join(parts, "."), fixtureKey(t, alg).Private.Public())
			g.Expect(err).To(HaveOccurred())
		})
	}
}

func TestNewSignerErrors(t *testing.T) {
	es := fixtureKey(t, ES256)
	badID, badAlg := *es, *es
	badID.ID = "not-the-thumbprint"
	badAlg.Algorithm = RS256
	tests := []struct {
		name string
		key  *Key
		want error
	}{
		{"nil", nil, nil},
		{"kid mismatch", &badID, ErrKeyIDMismatch},
		{"alg mismatch", &badAlg, ErrAlgorithmMismatch},
		{"unsupported alg", &Key{ID: es.ID, Algorithm: "none", Private: es.Private}, ErrUnsupportedAlgorithm},
		{"no private key", &Key{ID: es.ID, Algorithm: ES256}, ErrInvalidKeySet},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			s, err := NewSigner(tt.key)
			g.Expect(s).To(BeNil())
			g.Expect(err).To(HaveOccurred())
			if tt.want != nil {
				g.Expect(err).To(MatchError(tt.want))
			}
		})
	}
	s, err := NewSigner(es)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sign(nil); err == nil {
		t.Error("Sign(nil) succeeded, want error")
	}
}

func TestSignerConcurrent(t *testing.T) {
	for _, alg := range allAlgorithms {
		k := fixtureKey(t, alg)
		s, err := NewSigner(k)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				c, _ := json.Marshal(map[string]any{"sub": "client", "n": i})
				for range 10 {
					token, err := s.Sign(c)
					if err != nil {
						t.Errorf("%s: sign: %v", alg, err)
						return
					}
					if _, payload, err := verifyWithJose(t, token, k.Private.Public()); err != nil || string(payload) != string(c) {
						t.Errorf("%s: verify: %v", alg, err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
}

func BenchmarkSign(b *testing.B) {
	for _, alg := range allAlgorithms {
		b.Run(string(alg), func(b *testing.B) {
			s, err := NewSigner(fixtureKey(b, alg))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Sign(claims); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRawSignature measures only the golang-jwt signing method on the
// same signing string, so Sign's own overhead is the difference.
func BenchmarkRawSignature(b *testing.B) {
	methods := map[Algorithm]jwt.SigningMethod{
		ES256: jwt.SigningMethodES256,
		RS256: jwt.SigningMethodRS256,
		EdDSA: jwt.SigningMethodEdDSA,
	}
	for _, alg := range allAlgorithms {
		b.Run(string(alg), func(b *testing.B) {
			k := fixtureKey(b, alg)
			s, err := NewSigner(k)
			if err != nil {
				b.Fatal(err)
			}
			signingString := s.header + "." + base64.RawURLEncoding.EncodeToString(claims)
			m := methods[alg]
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Sign(signingString, k.Private); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestES256SignaturesVerifyWithGolangJWT: ES256 tokens (signed without golang-jwt's
// Sign) verify with golang-jwt and go-jose, over enough signatures that r and s take
// every shape their ASN.1 form has (a sign byte, a shorter value).
func TestES256SignaturesVerifyWithGolangJWT(t *testing.T) {
	t.Parallel()
	k := fixtureKey(t, ES256)
	s, err := NewSigner(k)
	if err != nil {
		t.Fatal(err)
	}
	pub := k.Private.Public()
	for i := range 1000 {
		token, err := s.Sign(claims)
		if err != nil {
			t.Fatal(err)
		}
		parsed, err := jwt.Parse(token, func(*jwt.Token) (any, error) { return pub, nil },
			jwt.WithValidMethods([]string{"ES256"}), jwt.WithoutClaimsValidation())
		if err != nil || !parsed.Valid {
			t.Fatalf("token %d does not verify with golang-jwt: %v", i, err)
		}
		if i%100 == 0 {
			if _, _, err := verifyWithJose(t, token, pub); err != nil {
				t.Fatalf("token %d does not verify with go-jose: %v", i, err)
			}
		}
	}
}

// TestRawSignature: ASN.1 ECDSA signatures to r||s, and what is refused.
func TestRawSignature(t *testing.T) {
	t.Parallel()
	full := func(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }
	der := func(ints ...[]byte) []byte {
		var body []byte
		for _, v := range ints {
			body = append(body, 0x02, byte(len(v)))
			body = append(body, v...)
		}
		return append([]byte{0x30, byte(len(body))}, body...)
	}
	for _, tc := range []struct {
		name string
		der  []byte
		want []byte // nil: refused
	}{
		{"32-byte values", der(full(0x11), full(0x22)), append(full(0x11), full(0x22)...)},
		{"sign bytes", der(append([]byte{0}, full(0x81)...), append([]byte{0}, full(0xff)...)), append(full(0x81), full(0xff)...)},
		{"short values", der([]byte{0x01}, []byte{0x7f, 0x02}), append(append(make([]byte, 31), 0x01), append(make([]byte, 30), 0x7f, 0x02)...)},
		{"zero", der([]byte{0}, []byte{0}), make([]byte, 64)},
		{"negative", der([]byte{0x80}, full(0x01)), nil},
		{"too long", der(append([]byte{0x01}, full(0x01)...), full(0x01)), nil},
		{"empty integer", der([]byte{}, full(0x01)), nil},
		{"one integer", der(full(0x01)), nil},
		{"three integers", der(full(0x01), full(0x01), []byte{1}), nil},
		{"trailing bytes", append(der(full(0x01), full(0x01)), 0), nil},
		{"not a sequence", append([]byte{0x31}, der(full(0x01), full(0x01))[1:]...), nil},
		{"wrong length", append([]byte{0x30, 0x10}, der(full(0x01), full(0x01))[2:]...), nil},
		{"empty", nil, nil},
	} {
		got, err := rawSignature(tc.der, 32)
		if tc.want == nil {
			if err == nil {
				t.Errorf("%s: accepted as %x", tc.name, got)
			}
			continue
		}
		if err != nil || !bytes.Equal(got, tc.want) {
			t.Errorf("%s: %x, %v; want %x", tc.name, got, err, tc.want)
		}
	}
}

func remarshals(v any, der []byte) bool {
	b, err := asn1.Marshal(v)
	return err == nil && bytes.Equal(b, der)
}

// FuzzRawSignature: rawSignature agrees with encoding/asn1 (into big.Int, written out
// with FillBytes; DER checked by marshalling back) on every input: the same inputs accepted, the same r||s out.
func FuzzRawSignature(f *testing.F) {
	k := fixtureKey(f, ES256).Private.(*ecdsa.PrivateKey)
	for range 8 {
		digest := sha256.Sum256([]byte("seed"))
		der, err := ecdsa.SignASN1(rand.Reader, k, digest[:])
		if err != nil {
			f.Fatal(err)
		}
		f.Add(der)
	}
	f.Add([]byte{0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00})
	f.Add([]byte{0x30, 0x06, 0x02, 0x01, 0x80, 0x02, 0x01, 0x01})
	f.Add([]byte{0x30, 0x07, 0x02, 0x02, 0x00, 0x01, 0x02, 0x01, 0x01})
	f.Fuzz(func(t *testing.T, der []byte) {
		got, err := rawSignature(der, 32)
		var sig struct{ R, S *big.Int }
		rest, aerr := asn1.Unmarshal(der, &sig)
		// encoding/asn1 skips elements after the struct's fields; marshalling back to the
		// same bytes is DER's one encoding of exactly two integers.
		libOK := aerr == nil && len(rest) == 0 && sig.R.Sign() >= 0 && sig.S.Sign() >= 0 &&
			sig.R.BitLen() <= 256 && sig.S.BitLen() <= 256 && remarshals(sig, der)
		if (err == nil) != libOK {
			t.Fatalf("%x: rawSignature err %v, encoding/asn1 accepts %v (%v)", der, err, libOK, aerr)
		}
		if err != nil {
			return
		}
		want := make([]byte, 64)
		sig.R.FillBytes(want[:32])
		sig.S.FillBytes(want[32:])
		if !bytes.Equal(got, want) {
			t.Fatalf("%x: %x, encoding/asn1 %x", der, got, want)
		}
	})
}
