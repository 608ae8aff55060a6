package v1alpha1

import (
	"cmp"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// NamespacesFrom says which namespaces may hold clients of an OAuthAPI.
// +kubebuilder:validation:Enum=All;Selector
type NamespacesFrom string

const (
	// NamespacesFromAll admits clients in every namespace.
	NamespacesFromAll NamespacesFrom = "All"
	// NamespacesFromSelector admits clients in namespaces whose labels match a selector.
	NamespacesFromSelector NamespacesFrom = "Selector"
)

// AllowedNamespaces selects the namespaces whose OAuthClients may obtain tokens for an API.
// +kubebuilder:validation:XValidation:rule="self.from != 'Selector' || has(self.selector)",message="selector is required when from is Selector"
// +kubebuilder:validation:XValidation:rule="self.from == 'Selector' || !has(self.selector)",message="selector may only be set when from is Selector"
type AllowedNamespaces struct {
	// From is All (every namespace) or Selector (namespaces matching selector).
	// +required
	From NamespacesFrom `json:"from"`

	// Selector picks the admitted namespaces by their labels. Required when from is
	// Selector, forbidden otherwise. An empty selector matches every namespace.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
}

// OAuthAPISpec describes an API (a resource server) that accepts access tokens.
type OAuthAPISpec struct {
	// Audience is the value of the `aud` claim of tokens issued for this API, and the
	// value clients pass as the `audience` token-request parameter. Defaults to the
	// object's name. May be a URI.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[!-~]+$`
	Audience string `json:"audience,omitempty"`

	// Scopes are the scopes this API defines. A client may only be granted scopes that
	// both its own spec and the API list.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	Scopes []Scope `json:"scopes,omitempty"`

	// AccessTokenTTL overrides the server's default access-token lifetime for this API.
	// The server's configured maximum still applies.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="accessTokenTTL must be a positive duration"
	AccessTokenTTL *metav1.Duration `json:"accessTokenTTL,omitempty"`

	// AllowedNamespaces says which namespaces may hold clients of this API. Only
	// cluster administrators write OAuthAPIs, so this is where access is granted.
	// +required
	AllowedNamespaces AllowedNamespaces `json:"allowedNamespaces"`

	// RequireDPoP makes every token for this API's audience sender-constrained
	// (RFC 9449): a token request for it without a valid DPoP proof is refused
	// (400 invalid_dpop_proof), whatever the client. Its resource servers then
	// see only DPoP-bound tokens, and may refuse bearer tokens outright
	// (pkg/verifier Config.RequireDPoP). Default false.
	// +optional
	RequireDPoP bool `json:"requireDPoP,omitempty"`
}

// OAuthAPIStatus is the observed state of an OAuthAPI, written by the operator.
type OAuthAPIStatus struct {
	// Audience is the effective audience: the `aud` claim of tokens issued for this
	// API and the value clients pass as the `audience` token-request parameter, that is
	// spec.audience, or the object's name when spec.audience is unset.
	// +optional
	Audience string `json:"audience,omitempty"`

	// ObservedGeneration is the generation of the spec this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions describe problems of the API. AudienceConflict is True while another
	// OAuthAPI has the same effective audience; it is absent otherwise.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// Conditions of an OAuthAPI.
const (
	// ConditionAudienceConflict is True while another OAuthAPI has the same effective
	// audience (reason ReasonSharedAudience; the message names the others). The token
	// server issues no tokens for an audience two APIs claim: a namespace admitted by
	// one would get tokens the other's resource servers accept. The condition is
	// removed when the collision is resolved.
	ConditionAudienceConflict = "AudienceConflict"
	// ReasonSharedAudience is the reason of ConditionAudienceConflict.
	ReasonSharedAudience = "SharedAudience"
)

// OAuthAPI is an API that accepts access tokens issued by the operator's token server.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=oaapi,categories=oauth
// +kubebuilder:printcolumn:name="Audience",type=string,JSONPath=`.status.audience`
// +kubebuilder:printcolumn:name="From",type=string,JSONPath=`.spec.allowedNamespaces.from`
// +kubebuilder:printcolumn:name="TTL",type=string,JSONPath=`.spec.accessTokenTTL`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type OAuthAPI struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the desired state of the API.
	// +required
	Spec OAuthAPISpec `json:"spec"`

	// Status is the observed state of the API.
	// +optional
	Status OAuthAPIStatus `json:"status,omitempty"`
}

// OAuthAPIList is a list of OAuthAPIs.
// +kubebuilder:object:root=true
type OAuthAPIList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the OAuthAPIs.
	Items []OAuthAPI `json:"items"`
}

// EffectiveAudience is the `aud` claim of tokens for this API: spec.audience, or the name.
func (a *OAuthAPI) EffectiveAudience() string {
	if a.Spec.Audience != "" {
		return a.Spec.Audience
	}
	return a.Name
}

// AudienceConflicts is the one rule of audience collisions: OAuthAPIs collide when
// their effective audiences are equal. It returns, for each API of apis that collides,
// the sorted names of the others with its audience; an API that collides with none is
// absent. The controller reports collisions with it, and the token server refuses
// tokens for a colliding audience with it.
func AudienceConflicts(apis []OAuthAPI) map[string][]string {
	byAudience := make(map[string][]string, len(apis))
	for i := range apis {
		aud := apis[i].EffectiveAudience()
		byAudience[aud] = append(byAudience[aud], apis[i].Name)
	}
	conflicts := map[string][]string{}
	for _, names := range byAudience {
		if len(names) < 2 {
			continue
		}
		slices.SortFunc(names, cmp.Compare[string])
		for _, n := range names {
			conflicts[n] = slices.DeleteFunc(slices.Clone(names), func(o string) bool { return o == n })
		}
	}
	return conflicts
}

// HasScope reports whether the API defines scope s.
func (a *OAuthAPI) HasScope(s string) bool {
	for _, v := range a.Spec.Scopes {
		if string(v) == s {
			return true
		}
	}
	return false
}

// NamespaceSelector is the one rule of namespace admission: the selector of the
// namespaces whose clients may obtain tokens for an API. From All admits every
// namespace; From Selector those the selector matches; anything else, none. It reads
// only what cluster administrators write (the OAuthAPI); callers match it against a
// Namespace's labels.
func (an AllowedNamespaces) NamespaceSelector() (labels.Selector, error) {
	switch an.From {
	case NamespacesFromAll:
		return labels.Everything(), nil
	case NamespacesFromSelector:
		if an.Selector == nil {
			return labels.Nothing(), nil
		}
		sel, err := metav1.LabelSelectorAsSelector(an.Selector)
		if err != nil {
			return labels.Nothing(), err
		}
		return sel, nil
	default:
		return labels.Nothing(), nil
	}
}

// Admits reports whether clients in namespace ns may obtain tokens for this API.
func (a *OAuthAPI) Admits(ns *corev1.Namespace) (bool, error) {
	sel, err := a.Spec.AllowedNamespaces.NamespaceSelector()
	if err != nil {
		return false, fmt.Errorf("invalid namespace selector of OAuthAPI %q: %w", a.Name, err)
	}
	return sel.Matches(labels.Set(ns.Labels)), nil
}
