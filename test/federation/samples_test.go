//go:build integration

package federation

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/internal/devenv"
	"github.com/oauth-client-operator/oauth-client-operator/internal/testenv"
	"github.com/oauth-client-operator/oauth-client-operator/internal/trust"
)

// offline refuses every fetch: the samples' issuers are on the internet.
type offline struct{}

func (offline) RoundTrip(*http.Request) (*http.Response, error) { return nil, errors.New("offline") }

// TestSamplesAreValid: config/samples/federation, which the README's walkthroughs
// show, is accepted by the API server with strict field validation, and its claim
// rules compile (no issuer of it is InvalidRule or InvalidKeySource).
func TestSamplesAreValid(t *testing.T) {
	ctx := context.Background()
	namespace(t, "samples", nil) // the samples' shop, which another test has

	objs, err := devenv.ReadObjects(filepath.Join(testenv.Root(), "config", "samples", "federation"))
	if err != nil {
		t.Fatal(err)
	}
	registry := trust.NewRegistry(trust.Options{Transport: offline{}, Log: logr.Discard()})
	defer registry.Close()
	issuers := 0
	for _, o := range objs {
		o := o.DeepCopy()
		if o.GetNamespace() != "" {
			o.SetNamespace("samples")
		}
		if err := k8s.Create(ctx, o, client.DryRunAll, client.FieldValidation("Strict")); err != nil {
			t.Errorf("%s %s rejected by the API server: %v", o.GetKind(), o.GetName(), err)
		}
		if o.GetKind() != "OAuthTrustedIssuer" {
			continue
		}
		issuers++
		ti := &oauthv1alpha1.OAuthTrustedIssuer{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, ti); err != nil {
			t.Fatal(err)
		}
		if p := registry.Ensure(ti).Problem(); p != nil {
			t.Errorf("sample OAuthTrustedIssuer %s: %s: %s", ti.Name, p.Reason, p.Message)
		}
	}
	if issuers != 3 {
		t.Errorf("%d sample issuers, want 3 (another cluster, GitHub Actions, SPIRE)", issuers)
	}
}
