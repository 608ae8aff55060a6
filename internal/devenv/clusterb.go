package devenv

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/internal/testenv"
)

// Cluster B is a second control plane on loopback standing for another cluster of a
// fleet: the operator trusts its ServiceAccount issuer (OAuthTrustedIssuer
// ClusterBIssuer, by OIDC discovery with its certificate authority), and the client
// ClusterBClient of namespace shop authenticates with tokens of cluster B's
// ServiceAccount shop/ClusterBServiceAccount: no secret at all.
const (
	// ClusterBIssuer names the OAuthTrustedIssuer of cluster B.
	ClusterBIssuer = "cluster-b"
	// ClusterBClient is the FederatedToken client of namespace shop whose rule names
	// cluster B's ServiceAccount; its client_id is SampleNamespace + "." + ClusterBClient.
	ClusterBClient = "cluster-b-sync"
	// ClusterBServiceAccount is cluster B's ServiceAccount, in namespace shop.
	ClusterBServiceAccount = "erp-sync"
)

// ClusterB is the second control plane of an environment started with
// Options.ClusterB.
type ClusterB struct {
	*testenv.IssuerCluster
	// Kubeconfig is the path of a kubeconfig for it (an administrator).
	Kubeconfig string
}

// startClusterB starts cluster B and writes its kubeconfig.
func (e *Env) startClusterB(ctx context.Context) error {
	e.logf("starting cluster B: a second etcd and kube-apiserver, another cluster's ServiceAccount issuer")
	b, err := testenv.StartIssuerCluster(ctx)
	if err != nil {
		return err
	}
	e.ClusterB = &ClusterB{IssuerCluster: b, Kubeconfig: filepath.Join(e.opts.Dir, "cluster-b.kubeconfig")}
	kubeconfig, err := b.AdminKubeconfig()
	if err != nil {
		return err
	}
	if err := os.WriteFile(e.ClusterB.Kubeconfig, kubeconfig, 0o600); err != nil {
		return fmt.Errorf("write cluster B's kubeconfig: %w", err)
	}
	return b.ServiceAccount(ctx, SampleNamespace, ClusterBServiceAccount)
}

// trustClusterB declares, in the first cluster, the OAuthTrustedIssuer of cluster B
// and the client its ServiceAccount's tokens authenticate; the namespace shop exists.
func (e *Env) trustClusterB(ctx context.Context) error {
	b := e.ClusterB
	issuer := &oauthv1alpha1.OAuthTrustedIssuer{
		ObjectMeta: metav1.ObjectMeta{Name: ClusterBIssuer},
		Spec: oauthv1alpha1.OAuthTrustedIssuerSpec{
			Issuer:               b.Issuer,
			CertificateAuthority: b.CAPEM,
			AllowedNamespaces: oauthv1alpha1.AllowedNamespaces{From: oauthv1alpha1.NamespacesFromSelector,
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: SampleNamespace}}},
			ClaimValidationRules: []oauthv1alpha1.ClaimValidationRule{{
				Expression: `claims.sub.startsWith("system:serviceaccount:" + client.namespace + ":")`,
				Message:    "a client may only name ServiceAccounts of its own namespace",
			}},
		},
	}
	client := &oauthv1alpha1.OAuthClient{
		ObjectMeta: metav1.ObjectMeta{Namespace: SampleNamespace, Name: ClusterBClient},
		Spec: oauthv1alpha1.OAuthClientSpec{
			Audiences: []string{APIAudience},
			Scopes:    []oauthv1alpha1.Scope{"users:read"},
			Authentication: &oauthv1alpha1.ClientAuthentication{Method: oauthv1alpha1.AuthFederatedToken,
				Federated: []oauthv1alpha1.FederatedRule{{
					Issuer: ClusterBIssuer, Subject: oauthv1alpha1.ServiceAccountSubject(SampleNamespace, ClusterBServiceAccount),
				}}},
		},
	}
	if err := e.Client.Create(ctx, issuer); err != nil {
		return fmt.Errorf("create OAuthTrustedIssuer %s: %w", ClusterBIssuer, err)
	}
	if err := e.Client.Create(ctx, client); err != nil {
		return fmt.Errorf("create OAuthClient %s/%s: %w", SampleNamespace, ClusterBClient, err)
	}
	return nil
}

// waitForClusterB polls until a token of cluster B's ServiceAccount, exchanged at the
// first replica, gets an access token (the operator has read cluster B's keys).
func (e *Env) waitForClusterB(ctx context.Context) error {
	last := errors.New("no attempt yet")
	err := e.poll(ctx, func(ctx context.Context) bool {
		_, last = e.ExchangeClusterBToken(ctx)
		return last == nil
	})
	if err != nil {
		return fmt.Errorf("wait for a token of cluster B to be accepted: %w (last attempt: %v)", err, last)
	}
	return nil
}

// ExchangeClusterBToken gets a token of cluster B's ServiceAccount shop/erp-sync for
// this token server (what `kubectl create token` gives) and exchanges it (RFC 8693)
// for an access token of the back-office API.
func (e *Env) ExchangeClusterBToken(ctx context.Context) (string, error) {
	if e.ClusterB == nil {
		return "", errors.New("no cluster B: start the environment with Options.ClusterB")
	}
	tok, err := e.ClusterB.Token(ctx, SampleNamespace, ClusterBServiceAccount, []string{e.Issuer}, 10*time.Minute)
	if err != nil {
		return "", err
	}
	form := url.Values{
		"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token":      {tok},
		"subject_token_type": {"urn:ietf:params:oauth:token-type:jwt"},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return doTokenRequest(e.HTTP, req)
}
