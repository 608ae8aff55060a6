package tokenserver

import (
	"testing"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
)

// TestClientScopes: a client entry grants exactly the scopes of its spec, in spec
// order (the order of a token's scope claim when none is requested).
func TestClientScopes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		scopes []oauthv1alpha1.Scope
		has    []string
		hasNot []string
	}{
		{"none", nil, nil, []string{"", "users:read"}},
		{"one", []oauthv1alpha1.Scope{"users:read"}, []string{"users:read"}, []string{"", "users", "users:write", "users:read "}},
		{"several", []oauthv1alpha1.Scope{"b", "a", "c"}, []string{"a", "b", "c"}, []string{"d", "ab"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(&oauthv1alpha1.OAuthClient{Spec: oauthv1alpha1.OAuthClientSpec{Audiences: []string{"api"}, Scopes: tc.scopes}})
			for _, s := range tc.has {
				if !c.hasScope(s) {
					t.Errorf("scope %q not granted", s)
				}
			}
			for _, s := range tc.hasNot {
				if c.hasScope(s) {
					t.Errorf("scope %q granted", s)
				}
			}
			if len(c.scopeList) != len(tc.scopes) {
				t.Fatalf("scopeList %v, want %v", c.scopeList, tc.scopes)
			}
			for i, s := range tc.scopes {
				if c.scopeList[i] != string(s) {
					t.Errorf("scopeList %v, want %v in spec order", c.scopeList, tc.scopes)
				}
			}
		})
	}
}
