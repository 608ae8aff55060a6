package signing

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"math/big"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	. "github.com/onsi/gomega"
)

var allAlgorithms = []Algorithm{ES256, RS256, EdDSA}

// fixtureKeys caches one generated key per algorithm for tests that do not
// need distinct keys (RSA generation is slow under -race).
var fixtureKeys = struct {
	sync.Mutex
	m map[Algorithm]*Key
}{m: map[Algorithm]*Key{}}

func fixtureKey(tb testing.TB, alg Algorithm) *Key {
	tb.Helper()
	fixtureKeys.Lock()
	defer fixtureKeys.Unlock()
	if k, ok := fixtureKeys.m[alg]; ok {
		return k
	}
	k := mustGenerate(tb, alg, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	fixtureKeys.m[alg] = k
	return k
}

func mustGenerate(tb testing.TB, alg Algorithm, now time.Time) *Key {
	tb.Helper()
	k, err := GenerateKey(alg, now)
	if err != nil {
		tb.Fatalf("GenerateKey(%s): %v", alg, err)
	}
	return k
}

func joseThumbprint(tb testing.TB, pub crypto.PublicKey) string {
	tb.Helper()
	jwk := jose.JSONWebKey{Key: pub}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		tb.Fatalf("go-jose thumbprint: %v", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp)
}

func TestParseAlgorithm(t *testing.T) {
	tests := []struct {
		in      string
		want    Algorithm
		wantErr bool
	}{
		{"ES256", ES256, false},
		{"RS256", RS256, false},
		{"EdDSA", EdDSA, false},
		{"es256", "", true},
		{"HS256", "", true},
		{"none", "", true},
		{"", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			g := NewWithT(t)
			got, err := ParseAlgorithm(tt.in)
			if tt.wantErr {
				g.Expect(err).To(MatchError(ErrUnsupportedAlgorithm))
				g.Expect(Algorithm(tt.in).Valid()).To(BeFalse())
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(tt.want))
			g.Expect(got.Valid()).To(BeTrue())
		})
	}
}

func TestThumbprintRFC7638Example(t *testing.T) {
	// RFC 7638 §3.1.
	const (
		n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAt" +
			"VT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn6" +
			"4tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FD" +
			"W2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n9" +
			"1CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINH" +
			"aQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
		e    = "AQAB"
		want = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
	)
	g := NewWithT(t)
	nb, err := base64.RawURLEncoding.DecodeString(n)
	g.Expect(err).NotTo(HaveOccurred())
	eb, err := base64.RawURLEncoding.DecodeString(e)
	g.Expect(err).NotTo(HaveOccurred())
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(nb), E: int(new(big.Int).SetBytes(eb).Int64())}

	got, err := Thumbprint(pub)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(Equal(want))
	g.Expect(joseThumbprint(t, pub)).To(Equal(want))
}

func TestThumbprintMatchesGoJose(t *testing.T) {
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		pub  crypto.PublicKey
	}{
		{"ES256", fixtureKey(t, ES256).Private.Public()},
		{"RS256", fixtureKey(t, RS256).Private.Public()},
		{"EdDSA", fixtureKey(t, EdDSA).Private.Public()},
		{"P-384", p384.Public()},
		{"P-256 with leading zero coordinate", p256WithLeadingZero(t)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			got, err := Thumbprint(tt.pub)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(joseThumbprint(t, tt.pub)))
			g.Expect(got).To(HaveLen(43))
		})
	}
}

// p256WithLeadingZero returns a P-256 public key whose x or y coordinate has
// a leading zero byte, to exercise the left-padding rule.
func p256WithLeadingZero(t *testing.T) *ecdsa.PublicKey {
	t.Helper()
	for range 20000 {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		pt, err := k.PublicKey.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		if pt[1] == 0 || pt[33] == 0 {
			return &k.PublicKey
		}
	}
	t.Fatal("no P-256 key with a leading zero coordinate found")
	return nil
}

func TestThumbprintUnsupported(t *testing.T) {
	x, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, pub := range []crypto.PublicKey{nil, x.PublicKey(), ed25519.PublicKey{1, 2, 3}, &rsa.PublicKey{}} {
		if _, err := Thumbprint(pub); err == nil {
			t.Errorf("Thumbprint(%T) succeeded, want error", pub)
		}
	}
}

func TestGenerateKey(t *testing.T) {
	now := time.Date(2026, 3, 4, 5, 6, 7, 890, time.FixedZone("X", 3600))
	for _, alg := range allAlgorithms {
		t.Run(string(alg), func(t *testing.T) {
			g := NewWithT(t)
			k, err := GenerateKey(alg, now)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(k.Algorithm).To(Equal(alg))
			g.Expect(k.ID).To(Equal(joseThumbprint(t, k.Private.Public())))
			g.Expect(k.CreatedAt).To(Equal(time.Date(2026, 3, 4, 4, 6, 7, 0, time.UTC)))
			g.Expect(k.ActivatesAt.IsZero() && k.RetiredAt.IsZero() && k.ExpiresAt.IsZero()).To(BeTrue())
			g.Expect(checkKeyType(alg, k.Private)).To(Succeed())
		})
	}
	t.Run("RSA size", func(t *testing.T) {
		g := NewWithT(t)
		k := fixtureKey(t, RS256)
		g.Expect(k.Private.(*rsa.PrivateKey).N.BitLen()).To(Equal(2048))
		_, err := GenerateKey(RS256, now, WithRSABits(1024))
		g.Expect(err).To(HaveOccurred())
		if testing.Short() {
			return
		}
		k, err = GenerateKey(RS256, now, WithRSABits(3072))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(k.Private.(*rsa.PrivateKey).N.BitLen()).To(Equal(3072))
	})
	t.Run("unsupported", func(t *testing.T) {
		_, err := GenerateKey("HS256", now)
		if !errors.Is(err, ErrUnsupportedAlgorithm) {
			t.Fatalf("err = %v, want ErrUnsupportedAlgorithm", err)
		}
	})
}
