package signing

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// The fixtures in testdata were written by the hand-written JWK and RFC 7638 code that
// go-jose replaced: keys-v1.json is a signing-key Secret's keys.json (test keys, never
// used anywhere), jwks-v1.json the JWKS it published. Key ids are thumbprints, so a
// Secret written before the change must keep its kids and its JWKS.

// fixtureKids are the kids of keys-v1.json: ES256, RS256, EdDSA, and an ES256 key whose
// x coordinate starts with a zero byte (the RFC 7518 left-padding rule).
var fixtureKids = []string{
	"p0dzbw7ulRRYYx4kFMSwRDRfVSSLF9Eo_DuOuvRkar8",
	"XbwmUswuuA4dMWFhjbtbWERaPGJwRFjjDdRxjt1Lf_8",
	"QwnuvoPxfYx3lcbGluqwUhC8HG2NquWEE_SJ4yF28kc",
	"7DBzaaVbJ7AA9xFBExeLdKjCMFQSCKZLXaRcugVrGvQ",
}

func TestSecretWrittenBeforeKeepsKidsAndJWKS(t *testing.T) {
	g := NewWithT(t)
	raw, err := os.ReadFile("testdata/keys-v1.json")
	g.Expect(err).NotTo(HaveOccurred())
	// Decode validates that every kid is the key's thumbprint as computed now.
	ks, err := Decode(map[string][]byte{SecretKey: raw})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ks.Keys).To(HaveLen(len(fixtureKids)))
	for i, k := range ks.Keys {
		g.Expect(k.ID).To(Equal(fixtureKids[i]))
		tp, err := Thumbprint(k.Private.Public())
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(tp).To(Equal(fixtureKids[i]), "thumbprint of key %d (%s)", i, k.Algorithm)
	}

	// The same JWKS members and values, key by key, in the same order.
	before, err := os.ReadFile("testdata/jwks-v1.json")
	g.Expect(err).NotTo(HaveOccurred())
	now, err := ks.JWKS(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	g.Expect(err).NotTo(HaveOccurred())
	var want, got map[string][]map[string]string
	g.Expect(json.Unmarshal(before, &want)).To(Succeed())
	g.Expect(json.Unmarshal(now, &got)).To(Succeed())
	g.Expect(got).To(Equal(want))
}
