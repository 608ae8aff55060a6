//go:build integration

package controllers_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/internal/signing"
)

func publicPEM(t *testing.T, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// TestPrivateKeyJWTGeneratedKey: the operator generates the key pair (the signing
// algorithm's family), writes it with its thumbprint and no client_secret, and rotates
// it like a secret, keeping the previous public key for the grace period.
func TestPrivateKeyJWTGeneratedKey(t *testing.T) { // moves the clock: not parallel
	g := NewWithT(t)
	ns := newNamespace(t, nil)
	api := newAPI(t, oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNamespaces()})
	oc := newClient(t, ns, "signer", oauthv1alpha1.OAuthClientSpec{
		Audiences:      []string{api.Name},
		SecretRotation: &oauthv1alpha1.SecretRotation{GracePeriod: &metav1.Duration{Duration: 10 * time.Minute}},
		Authentication: &oauthv1alpha1.ClientAuthentication{Method: oauthv1alpha1.AuthPrivateKeyJWT},
	})
	waitReady(t, ns, oc.Name, metav1.ConditionTrue, oauthv1alpha1.ReasonReady)
	s := getSecret(g, ns, "signer")
	g.Expect(s.Data).NotTo(HaveKey("client_secret"))
	pub, kid, err := signing.ParseClientPrivateKey(string(s.Data["private_key"]))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(s.Data["key_id"])).To(Equal(kid))
	_, isEC := pub.(*ecdsa.PublicKey)
	g.Expect(isEC).To(BeTrue(), "ES256 operator: an EC P-256 key, got %T", pub)
	g.Expect(string(s.Data["private_key"])).To(HavePrefix("-----BEGIN PRIVATE KEY-----"))

	// Rotate by the annotation: a new key pair, the previous public key kept.
	setClientAnnotation(t, ns, "signer", oauthv1alpha1.RotateSecretAnnotation, "1")
	g.Eventually(func(g Gomega) {
		r := getSecret(g, ns, "signer")
		g.Expect(string(r.Data["key_id"])).NotTo(Equal(kid))
		prev, err := signing.ParsePublicKeyPEM(string(r.Data["previous_public_key"]))
		g.Expect(err).NotTo(HaveOccurred())
		prevKid, _ := signing.Thumbprint(prev)
		g.Expect(prevKid).To(Equal(kid))
		g.Expect(r.Annotations).To(HaveKey(oauthv1alpha1.PreviousSecretExpiresAnnotation))
	}, timeout, interval).Should(Succeed())

	// After the grace period (injected clock) the previous key goes.
	clock.Advance(11 * time.Minute)
	poke(t, ns, "signer")
	g.Eventually(func() map[string][]byte { return getSecret(g, ns, "signer").Data }, timeout, interval).
		ShouldNot(HaveKey("previous_public_key"))

	// A key replaced by hand with garbage is regenerated.
	r := getSecret(g, ns, "signer")
	patch := client.MergeFrom(r.DeepCopy())
	r.Data["private_key"] = []byte("not a key")
	g.Expect(k8s.Patch(context.Background(), r, patch)).To(Succeed())
	g.Eventually(func(g Gomega) {
		_, _, err := signing.ParseClientPrivateKey(string(getSecret(g, ns, "signer").Data["private_key"]))
		g.Expect(err).NotTo(HaveOccurred())
	}, timeout, interval).Should(Succeed())
}

// TestPrivateKeyJWTPublicKeys: a client naming its own public keys gets no key material
// in its Secret; a key that cannot verify assertions makes it not Ready, naming the entry.
func TestPrivateKeyJWTPublicKeys(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := newNamespace(t, nil)
	api := newAPI(t, oauthv1alpha1.OAuthAPISpec{AllowedNamespaces: allNamespaces()})
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	oc := newClient(t, ns, "own", oauthv1alpha1.OAuthClientSpec{
		Audiences:      []string{api.Name},
		Authentication: &oauthv1alpha1.ClientAuthentication{Method: oauthv1alpha1.AuthPrivateKeyJWT, PublicKeys: []string{publicPEM(t, &ec.PublicKey)}},
	})
	waitReady(t, ns, oc.Name, metav1.ConditionTrue, oauthv1alpha1.ReasonReady)
	s := getSecret(g, ns, "own")
	for _, k := range []string{"client_secret", "private_key", "key_id", "previous_public_key"} {
		g.Expect(s.Data).NotTo(HaveKey(k))
	}
	g.Expect(s.Data).To(HaveKey("token_url"))

	for _, bad := range []struct {
		key, want string
	}{
		{publicPEM(t, &p384.PublicKey), "publicKeys[1]"},
		{publicPEM(t, &small.PublicKey), "publicKeys[1]"},
		{"-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----", "publicKeys[1]"},
	} {
		patch := client.MergeFrom(oc.DeepCopy())
		oc.Spec.Authentication.PublicKeys = []string{publicPEM(t, &ec.PublicKey), bad.key}
		g.Expect(k8s.Patch(context.Background(), oc, patch)).To(Succeed())
		cond := waitReady(t, ns, oc.Name, metav1.ConditionFalse, oauthv1alpha1.ReasonInvalidPublicKey)
		g.Expect(cond.Message).To(ContainSubstring(bad.want))
	}

	// The API server refuses what CEL can tell.
	for _, tc := range []struct {
		auth oauthv1alpha1.ClientAuthentication
		want string
	}{
		{oauthv1alpha1.ClientAuthentication{Method: oauthv1alpha1.AuthPrivateKeyJWT, PublicKeys: []string{"ssh-ed25519 AAAA"}}, "PEM block of type PUBLIC KEY"},
		{oauthv1alpha1.ClientAuthentication{Method: oauthv1alpha1.AuthPrivateKeyJWT, PublicKeys: []string{"-----BEGIN RSA PRIVATE KEY-----\nx\n-----END RSA PRIVATE KEY-----"}}, "PEM block of type PUBLIC KEY"},
		{oauthv1alpha1.ClientAuthentication{Method: oauthv1alpha1.AuthClientSecret, PublicKeys: []string{publicPEM(t, &ec.PublicKey)}}, "publicKeys may only be set when method is PrivateKeyJWT"},
	} {
		bad := &oauthv1alpha1.OAuthClient{ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "bad-"},
			Spec: oauthv1alpha1.OAuthClientSpec{Audiences: []string{api.Name}, Authentication: &tc.auth}}
		err := k8s.Create(context.Background(), bad)
		g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "create = %v", err)
		g.Expect(strings.Contains(err.Error(), tc.want)).To(BeTrue(), "%v does not say %q", err, tc.want)
	}
}
