// Package v1alpha1 contains the oauth.operator.dev/v1alpha1 API: OAuthAPI (an API that
// accepts access tokens, cluster-scoped) and OAuthClient (a machine-to-machine client,
// namespaced).
// +kubebuilder:object:generate=true
// +groupName=oauth.operator.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of every object in this package.
	GroupVersion = schema.GroupVersion{Group: "oauth.operator.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the types of this package with a runtime.Scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types of this package to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &OAuthClient{}, &OAuthClientList{}, &OAuthAPI{}, &OAuthAPIList{}, &OAuthTrustedIssuer{}, &OAuthTrustedIssuerList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
