// Package v1alpha1 contains the oauth.operator.dev/v1alpha1 API: OAuthAPI (an API that
// accepts access tokens, cluster-scoped) and OAuthClient (a machine-to-machine client,
// namespaced).
// +kubebuilder:object:generate=true
// +groupName=oauth.operator.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of every object in this package.
	GroupVersion = schema.GroupVersion{Group: "oauth.operator.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the types of this package with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types of this package to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
