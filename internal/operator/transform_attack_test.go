package operator

// Attack review 4 (issue 21): the cache transforms' shared tables.

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"k8s.io/apimachinery/pkg/types"
)

// TestSharedValuesDoNotOutliveTheirSecrets: a tenant who can write Secrets gives
// 2,048 of them (the managed-by label, an OAuthClient of theirs as controller) a
// distinct token_url and issuer of 2 KiB each — within CredentialSecretKeyLimits —
// and deletes them again. Once the informer has dropped them, no replica should still
// hold what they carried. sharedValues keeps every value twice (a string copy as the
// key, the Secret's own slice as the value) until the table fills: 4,096 × 4 KiB =
// 16 MiB per replica, held after the Secrets are gone, that never shares anything
// (no operator-written Secret carries those values).
func TestSharedValuesDoNotOutliveTheirSecrets(t *testing.T) {
	transform := secretTransform(types.NamespacedName{Namespace: "oauth-system", Name: "signing-keys"})
	sharedValues.mu.Lock()
	clear(sharedValues.m)
	sharedValues.mu.Unlock()
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	const limit = 2 << 10
	for i := range maxShared / 2 {
		s := benchSecret(i)
		s.Data[oauthv1alpha1.SecretKeyTokenURL] = bytes.Repeat([]byte(fmt.Sprintf("t%07d", i)), limit/8)
		s.Data[oauthv1alpha1.SecretKeyIssuer] = bytes.Repeat([]byte(fmt.Sprintf("i%07d", i)), limit/8)
		if _, err := transform(s); err != nil {
			t.Fatal(err)
		}
		// The informer drops the Secret when the tenant deletes it.
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	retained := int64(ms.HeapAlloc) - int64(base)
	t.Logf("shared values table: %d entries", sharedValues.len())
	if retained > 1<<20 {
		t.Errorf("%.1f MiB of deleted tenant Secrets' values are still held by the shared-values table (%d entries), in every replica",
			float64(retained)/(1<<20), sharedValues.len())
	}
}
