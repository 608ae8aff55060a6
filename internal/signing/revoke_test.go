package signing

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

func jwksKids(g Gomega, ks *KeySet, now time.Time) []string {
	raw, err := ks.JWKS(now)
	g.Expect(err).NotTo(HaveOccurred())
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	g.Expect(json.Unmarshal(raw, &set)).To(Succeed())
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.Kid)
	}
	return kids
}

// TestRevokeCurrentKey: the revoked current key leaves the set and the JWKS at once, a
// new key signs from now (no propagation delay), and the revocation survives
// Encode/Decode; a set that holds a key it lists as revoked does not decode.
func TestRevokeCurrentKey(t *testing.T) {
	g := NewWithT(t)
	ks, current, next, retired, _ := multiKeySet(t)
	now := t0.Add(90 * time.Second)
	g.Expect(jwksKids(g, ks, now)).To(ContainElement(current.ID))

	changes, unknown, err := ks.Revoke([]string{current.ID}, ES256, time.Hour, now)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(unknown).To(BeEmpty())
	g.Expect(ks.CurrentID).NotTo(Equal(current.ID))
	newKey := ks.Current()
	g.Expect(newKey).NotTo(BeNil())
	g.Expect(newKey.Algorithm).To(Equal(ES256))
	g.Expect(newKey.ActivatesAt.IsZero() || !newKey.ActivatesAt.After(now)).To(BeTrue(), "the new key signs at once")
	g.Expect(ks.Find(current.ID)).To(BeNil())
	g.Expect(ks.Find(next.ID)).NotTo(BeNil(), "keys not named stay")
	g.Expect(ks.Find(retired.ID)).NotTo(BeNil(), "keys not named stay")
	g.Expect(ks.Revoked).To(ConsistOf(RevokedKey{ID: current.ID, RevokedAt: now.Truncate(time.Second)}))
	g.Expect(jwksKids(g, ks, now)).NotTo(ContainElement(current.ID))
	g.Expect(jwksKids(g, ks, now)[0]).To(Equal(newKey.ID), "the JWKS lists the new current key first")
	g.Expect(strings.Join(changes, "; ")).To(ContainSubstring("revoked key " + current.ID))
	g.Expect(ks.Validate()).To(Succeed())

	// A signer of the new set signs with the new key.
	s, err := NewSigner(ks.Current())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(s.KeyID()).To(Equal(newKey.ID))

	data, err := ks.Encode()
	g.Expect(err).NotTo(HaveOccurred())
	back, err := Decode(data)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(back.Revoked).To(Equal(ks.Revoked))
	g.Expect(back.IsRevoked(current.ID)).To(BeTrue())

	// The revoked key back in the keys of the same document: refused.
	back.Keys = append(back.Keys, current)
	g.Expect(back.Validate()).To(MatchError(ErrRevokedKey))
	_, err = back.Encode()
	g.Expect(err).To(MatchError(ErrRevokedKey))

	// Revoking it again changes nothing.
	before := len(ks.Keys)
	changes, unknown, err = ks.Revoke([]string{current.ID}, ES256, time.Hour, now)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(changes).To(BeEmpty())
	g.Expect(unknown).To(BeEmpty())
	g.Expect(ks.Keys).To(HaveLen(before))
}

// TestRevokeRetiredKey: revoking a key that no longer signs still puts a new key in
// force at once; the previous current key is retired as in a rotation (published for
// the retirement time), so its tokens keep verifying.
func TestRevokeRetiredKey(t *testing.T) {
	g := NewWithT(t)
	ks, current, _, retired, _ := multiKeySet(t)
	_, unknown, err := ks.Revoke([]string{retired.ID}, EdDSA, time.Hour, t0)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(unknown).To(BeEmpty())
	g.Expect(ks.Find(retired.ID)).To(BeNil())
	g.Expect(ks.CurrentID).NotTo(Equal(current.ID))
	g.Expect(ks.Current().Algorithm).To(Equal(EdDSA))
	g.Expect(current.RetiredAt).To(Equal(t0))
	g.Expect(current.ExpiresAt).To(Equal(t0.Add(time.Hour)))
	kids := jwksKids(g, ks, t0)
	g.Expect(kids).To(ContainElement(current.ID), "the previous current key stays published")
	g.Expect(kids).NotTo(ContainElement(retired.ID))
}

// TestRevokeAllAndUnknown: RevokeAll leaves only the new key; an unknown id changes
// nothing and is reported.
func TestRevokeAllAndUnknown(t *testing.T) {
	g := NewWithT(t)
	ks, current, next, retired, expired := multiKeySet(t)
	changes, unknown, err := ks.Revoke([]string{"no-such-kid"}, ES256, time.Hour, t0)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(changes).To(BeEmpty())
	g.Expect(unknown).To(Equal([]string{"no-such-kid"}))
	g.Expect(ks.CurrentID).To(Equal(current.ID))

	_, unknown, err = ks.Revoke(ParseRevokeRequest(" all, no-such-kid "), ES256, time.Hour, t0)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(unknown).To(Equal([]string{"no-such-kid"}))
	g.Expect(ks.Keys).To(HaveLen(1))
	g.Expect(ks.CurrentID).To(Equal(ks.Keys[0].ID))
	for _, k := range []*Key{current, next, retired, expired} {
		g.Expect(ks.IsRevoked(k.ID)).To(BeTrue(), "key %s", k.ID)
	}
	g.Expect(jwksKids(g, ks, t0)).To(Equal([]string{ks.CurrentID}))
}

// TestWithoutRevoked: a process that remembers a revocation drops that key from a set
// that brings it back (a restored backup without the revoked list), and refuses a set
// whose current key is revoked.
func TestWithoutRevoked(t *testing.T) {
	g := NewWithT(t)
	ks, current, next, retired, _ := multiKeySet(t)
	mem := &Revocations{}
	clean, dropped, err := ks.WithoutRevoked(mem)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(dropped).To(BeEmpty())
	g.Expect(clean.Keys).To(HaveLen(len(ks.Keys)))

	mem.Add(RevokedKey{ID: retired.ID, RevokedAt: t0})
	clean, dropped, err = ks.WithoutRevoked(mem)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(dropped).To(Equal([]string{retired.ID}))
	g.Expect(clean.Find(retired.ID)).To(BeNil())
	g.Expect(clean.Find(next.ID)).NotTo(BeNil())
	g.Expect(clean.IsRevoked(retired.ID)).To(BeTrue(), "the clean set records the revocation")
	g.Expect(clean.Validate()).To(Succeed())
	g.Expect(jwksKids(g, clean, t0)).NotTo(ContainElement(retired.ID))
	g.Expect(ks.Find(retired.ID)).NotTo(BeNil(), "the input is not changed")

	mem.Add(RevokedKey{ID: current.ID, RevokedAt: t0})
	_, _, err = ks.WithoutRevoked(mem)
	g.Expect(errors.Is(err, ErrRevokedKey)).To(BeTrue(), "a set signing with a revoked key is refused: %v", err)

	// The nil memory is empty.
	var none *Revocations
	none.Add(RevokedKey{ID: "x"})
	g.Expect(none.Has("x")).To(BeFalse())
	_, dropped, err = ks.WithoutRevoked(none)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(dropped).To(BeEmpty())
}

func TestParseRevokeRequest(t *testing.T) {
	g := NewWithT(t)
	g.Expect(ParseRevokeRequest("a")).To(Equal([]string{"a"}))
	g.Expect(ParseRevokeRequest(" a, b ,a\tc\n")).To(Equal([]string{"a", "b", "c"}))
	g.Expect(ParseRevokeRequest(" , ")).To(BeEmpty())
}
