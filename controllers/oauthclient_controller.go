// Package controllers holds the operator's reconcilers.
package controllers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/internal/config"
	"github.com/oauth-client-operator/oauth-client-operator/internal/signing"
)

// AudienceIndex indexes OAuthClients by the OAuthAPI names in spec.audiences.
const AudienceIndex = "spec.audiences"

// ServiceAccountIndex indexes OAuthClients by spec.authentication.serviceAccountName.
const ServiceAccountIndex = "spec.authentication.serviceAccountName"

// TrustedIssuerIndex indexes OAuthClients by the OAuthTrustedIssuers their
// spec.authentication.federated rules name.
const TrustedIssuerIndex = "spec.authentication.federated.issuer"

// Event reasons a user may see on an OAuthClient.
const (
	EventSecretCreated     = "SecretCreated"
	EventSecretRecreated   = "SecretRecreated"
	EventSecretRepaired    = "SecretRepaired"
	EventSecretRegenerated = "SecretRegenerated"
	EventSecretConflict    = "SecretConflict"
	EventSecretRotated     = "SecretRotated"
	EventSecretRemoved     = "SecretRemoved"
	// EventSecretRotationDeferred: a new rotate-secret value came sooner than
	// clients.rotateSecretMinInterval after the last one; it is acted on when allowed.
	EventSecretRotationDeferred = "SecretRotationDeferred"
	// EventKeyGenerationDeferred: the client's credential-generation budget is spent
	// (its Secret was changed, deleted or asked to rotate too often); a new credential
	// is generated when it refills.
	EventKeyGenerationDeferred = "KeyGenerationDeferred"
)

// conflictRetry is when a reconcile that lost an optimistic-lock race (the Secret
// changed between the read and the write) runs again, on the newer copy.
const conflictRetry = time.Second

// OAuthClientReconciler turns each OAuthClient into a Secret of credentials and reports
// whether the client can obtain tokens.
type OAuthClientReconciler struct {
	// Client reads from the manager's cache (Secrets: only the operator's) and writes
	// to the API server.
	client.Client
	// APIReader reads from the API server directly; used only to look for a Secret of
	// the wanted name that the cache does not hold.
	APIReader client.Reader
	Scheme    *runtime.Scheme
	Recorder  events.EventRecorder
	// Config is the operator's configuration: the issuer and token URL written into
	// every Secret, the family of generated key pairs (signing.algorithm) and the
	// minimum interval between requested rotations (clients.rotateSecretMinInterval).
	// Required.
	Config *config.Config
	// Clock is the time of rotations; clock.RealClock when nil.
	Clock clock.PassiveClock
	// Workers is how many clients are reconciled at once; 0: config.DefaultReconcileWorkers.
	Workers int

	budgetOnce  sync.Once
	generations *generationBudget
}

// notReady is why a client is not Ready: a state the user must change, not an error
// to retry.
type notReady struct {
	reason, message string
}

// observation is what one reconcile found out about a client: what its status reports.
type observation struct {
	// secret is the client's Secret as written; nil when it has none it controls.
	secret *corev1.Secret
	// problem is why the client is not Ready; nil when it is.
	problem *notReady
	// note is added to the message of a Ready client.
	note string
	// requeue is when to look again; 0 when nothing is pending.
	requeue time.Duration
}

// +kubebuilder:rbac:groups=oauth.operator.dev,resources=oauthclients,verbs=get;list;watch
// +kubebuilder:rbac:groups=oauth.operator.dev,resources=oauthclients/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=oauth.operator.dev,resources=oauthclients/finalizers,verbs=update
// +kubebuilder:rbac:groups=oauth.operator.dev,resources=oauthapis,verbs=get;list;watch
// +kubebuilder:rbac:groups=oauth.operator.dev,resources=oauthtrustedissuers,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=serviceaccounts,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile makes the client's Secret hold its credentials, then records in status
// whether every audience admits the client. A write that lost a race with another
// writer is retried on the newer copy and changes no status.
func (r *OAuthClientReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	oc := &oauthv1alpha1.OAuthClient{}
	if err := r.Get(ctx, req.NamespacedName, oc); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !oc.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil // the Secret goes with it (owner reference)
	}
	obs, err := r.observe(ctx, oc)
	if lostRace(err) {
		logf.FromContext(ctx).V(1).Info("the client's Secret changed meanwhile; reconciling again", "reason", apierrors.ReasonForError(err))
		return ctrl.Result{RequeueAfter: conflictRetry}, nil
	}
	if statusErr := r.writeStatus(ctx, oc, r.clientStatus(oc, obs, err)); statusErr != nil {
		return ctrl.Result{}, errors.Join(err, statusErr)
	}
	return ctrl.Result{RequeueAfter: obs.requeue}, err
}

// lostRace reports whether err only means that another writer came first: the
// reconcile runs again on what it wrote, and no one needs to hear about it.
func lostRace(err error) bool {
	return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)
}

// observe syncs the client's Secret, then checks, in order, what keeps the client from
// getting tokens: its public keys, its federated rules, its audiences, spec.disabled.
func (r *OAuthClientReconciler) observe(ctx context.Context, oc *oauthv1alpha1.OAuthClient) (observation, error) {
	var obs observation
	var err error
	obs.secret, obs.problem, obs.requeue, err = r.syncSecret(ctx, oc)
	if err != nil || obs.problem != nil {
		return obs, err
	}
	if obs.problem = checkPublicKeys(oc); obs.problem != nil {
		return obs, nil
	}
	if obs.problem, err = r.checkFederatedRules(ctx, oc); err != nil || obs.problem != nil {
		return obs, err
	}
	if obs.problem, err = r.checkAudiences(ctx, oc); err != nil || obs.problem != nil {
		return obs, err
	}
	if oc.Spec.Disabled {
		obs.problem = &notReady{oauthv1alpha1.ReasonDisabled, "the client is disabled: its credentials are kept, no tokens are issued"}
		return obs, nil
	}
	obs.note, err = r.serviceAccountNote(ctx, oc)
	return obs, err
}

// syncSecret makes the client's Secret hold its credentials: it plans what the Secret
// needs (planSecret), writes it in one request and reports it. It never touches a
// Secret this client does not control: that is a SecretConflict. It returns the
// Secret as written and when to look again.
//
// A new client (createFirst) whose Secret is not in the cache gets it created without
// asking the API server first; only if one exists is it read, and the plan made again
// on it. That saves one of the four requests a new client costs, which is what a bulk
// creation waits on (README "Scale").
func (r *OAuthClientReconciler) syncSecret(ctx context.Context, oc *oauthv1alpha1.OAuthClient) (*corev1.Secret, *notReady, time.Duration, error) {
	key := types.NamespacedName{Namespace: oc.Namespace, Name: oc.EffectiveSecretName()}
	current, err := r.cachedSecret(ctx, key)
	if err != nil {
		return nil, nil, 0, err
	}
	if current == nil && createFirst(oc) {
		written, problem, requeue, err := r.syncSecretFrom(ctx, oc, key, nil, true)
		if !apierrors.IsAlreadyExists(err) {
			return written, problem, requeue, err
		}
	}
	if current == nil {
		if current, err = r.liveSecret(ctx, key); err != nil {
			return nil, nil, 0, err
		}
	}
	return r.syncSecretFrom(ctx, oc, key, current, false)
}

// createFirst reports whether a Secret missing from the cache is created without
// looking for it on the API server: for a client no reconcile has written status for
// yet. Any other client's Secret may exist without the managed-by label (anyone's, or
// its own with the label removed by hand), and is looked for first.
func createFirst(oc *oauthv1alpha1.OAuthClient) bool {
	return len(oc.Status.Conditions) == 0
}

// syncSecretFrom is syncSecret on current, the Secret of that name (nil: none).
// blind: current is nil without a look on the API server (a create that finds
// a Secret there gives back the generation it took).
func (r *OAuthClientReconciler) syncSecretFrom(ctx context.Context, oc *oauthv1alpha1.OAuthClient, key types.NamespacedName, current *corev1.Secret, blind bool) (*corev1.Secret, *notReady, time.Duration, error) {
	if current != nil && oauthv1alpha1.SecretOwner(current) != oc.UID {
		return nil, r.secretConflict(oc, key), 0, nil
	}
	now := r.clock().Now()
	plan := planSecret(secretState{
		client:             oc,
		secret:             current,
		cred:               credentialFor(oc, r.Config.Signing.Algorithm),
		managed:            r.managedData(oc),
		now:                now,
		minRequestInterval: r.Config.Clients.RotateSecretMinInterval.Duration,
	})
	var refund func()
	if plan.generate != genNone {
		wait, give, ok := r.budget().reserve(oc.UID, now)
		if !ok {
			return current, r.generationDeferred(oc, current, wait), wait, nil
		}
		refund = give
	}
	written, err := r.writeSecret(ctx, oc, key, current, &plan)
	if err != nil {
		// A create made without looking that found the Secret there stored nothing:
		// the credential it carried costs the client no generation (else a new client
		// whose create finds its own Secret, or someone's, spends its budget on
		// nothing and may be deferred). Only there: a create after a look that loses
		// a race keeps what it took, so no one can make the operator generate
		// without bound by winning that race.
		if refund != nil && blind && apierrors.IsAlreadyExists(err) {
			refund()
		}
		return nil, nil, 0, err
	}
	r.report(ctx, oc, written, &plan)
	return written, nil, plan.requeue, nil
}

// budget is the clients' credential-generation budget of this term.
func (r *OAuthClientReconciler) budget() *generationBudget {
	r.budgetOnce.Do(func() { r.generations = newGenerationBudget(r.Config.Clients.RotateSecretMinInterval.Duration) })
	return r.generations
}

// generationDeferred reports a credential the budget holds back: an event, and, when
// the client has no usable Secret meanwhile, why it is not Ready.
func (r *OAuthClientReconciler) generationDeferred(oc *oauthv1alpha1.OAuthClient, current *corev1.Secret, wait time.Duration) *notReady {
	msg := fmt.Sprintf("a new credential is deferred for %s: more than %d were generated for this client within clients.rotateSecretMinInterval (%s); its Secret was changed, deleted or asked to rotate that often",
		wait.Round(time.Second), generationBurst, r.Config.Clients.RotateSecretMinInterval.Duration)
	r.Recorder.Eventf(oc, nil, corev1.EventTypeWarning, EventKeyGenerationDeferred, "Reconcile", msg)
	if current == nil {
		return &notReady{oauthv1alpha1.ReasonCredentialDeferred, msg}
	}
	return nil
}

// cachedSecret returns the Secret of that name from the cache; nil when it has none.
// The cache holds only Secrets with the managed-by label.
func (r *OAuthClientReconciler) cachedSecret(ctx context.Context, key types.NamespacedName) (*corev1.Secret, error) {
	return getSecret(ctx, r.Client, key)
}

// liveSecret returns the Secret of that name from the API server; nil when none
// exists. It finds what the cache does not hold: a Secret without the managed-by label
// (anyone's, or ours with the label removed by hand), or one written a moment ago.
func (r *OAuthClientReconciler) liveSecret(ctx context.Context, key types.NamespacedName) (*corev1.Secret, error) {
	return getSecret(ctx, r.APIReader, key)
}

func getSecret(ctx context.Context, reader client.Reader, key types.NamespacedName) (*corev1.Secret, error) {
	secret := &corev1.Secret{}
	if err := reader.Get(ctx, key, secret); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("get Secret %s: %w", key, err)
	}
	return secret, nil
}

// secretConflict reports a Secret of the wanted name that the client does not control,
// with an event the first time.
func (r *OAuthClientReconciler) secretConflict(oc *oauthv1alpha1.OAuthClient, key types.NamespacedName) *notReady {
	msg := fmt.Sprintf("Secret %q exists and is not controlled by this OAuthClient; it was left untouched (delete it, or set spec.secretName on a new client)", key.Name)
	if !hasReason(oc, oauthv1alpha1.ReasonSecretConflict) {
		r.Recorder.Eventf(oc, nil, corev1.EventTypeWarning, EventSecretConflict, "Reconcile", msg)
	}
	return &notReady{oauthv1alpha1.ReasonSecretConflict, msg}
}

// writeSecret applies the plan to a copy of current (a new Secret when the plan
// creates one) and writes it: a create, or one patch with an optimistic lock, or
// nothing when the plan changes nothing.
func (r *OAuthClientReconciler) writeSecret(ctx context.Context, oc *oauthv1alpha1.OAuthClient, key types.NamespacedName, current *corev1.Secret, plan *secretPlan) (*corev1.Secret, error) {
	if plan.empty() {
		return current, nil
	}
	cred := credentialFor(oc, r.Config.Signing.Algorithm)
	if !plan.create {
		secret := current.DeepCopy()
		if err := plan.applyTo(secret, cred); err != nil {
			return nil, err
		}
		if err := r.Patch(ctx, secret, client.MergeFromWithOptions(current, client.MergeFromWithOptimisticLock{})); err != nil {
			return nil, fmt.Errorf("update Secret %s: %w", key, err)
		}
		return secret, nil
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}, Type: corev1.SecretTypeOpaque}
	if err := plan.applyTo(secret, cred); err != nil {
		return nil, err
	}
	if err := controllerutil.SetControllerReference(oc, secret, r.Scheme); err != nil {
		return nil, fmt.Errorf("set owner of Secret %s: %w", key, err)
	}
	if err := r.Create(ctx, secret); err != nil {
		return nil, fmt.Errorf("create Secret %s: %w", key, err)
	}
	return secret, nil
}

// report tells what a written plan changed: its events, a log line per change, the
// rotation metric.
func (r *OAuthClientReconciler) report(ctx context.Context, oc *oauthv1alpha1.OAuthClient, secret *corev1.Secret, plan *secretPlan) {
	for _, e := range plan.events {
		r.Recorder.Eventf(oc, secret, e.eventType, e.reason, e.action, "%s", e.note)
	}
	log := logf.FromContext(ctx).WithValues("secret", secret.Name)
	cred := credentialFor(oc, r.Config.Signing.Algorithm)
	switch {
	case plan.create:
		log.Info("created credential Secret")
	case len(plan.repaired) > 0:
		log.Info("restored credential Secret", "fields", plan.repaired)
	}
	if plan.removed {
		log.Info("removed the stored credentials: the client's method needs none in its Secret", "method", oc.AuthMethod())
	}
	switch plan.generate {
	case genSwitch:
		log.Info("generated a credential for the client's method", "credential", cred.name, "method", oc.AuthMethod())
	case genRegenerate:
		log.Info("generated a new credential: the stored one was missing or unusable", "credential", cred.name)
	case genRotate:
		SecretRotations.WithLabelValues(plan.rotation).Inc()
		log.Info("rotated client credential", "credential", cred.name, "trigger", plan.rotation, "gracePeriod", oc.SecretGracePeriod().String())
	}
	if plan.expired {
		log.Info("previous client credential expired", "credential", cred.name)
	}
	if !plan.deferredUntil.IsZero() {
		log.Info("deferred a requested rotation", "credential", cred.name, "until", plan.deferredUntil)
	}
}

// checkAudiences verifies that every audience names an OAuthAPI that admits the
// client's namespace.
func (r *OAuthClientReconciler) checkAudiences(ctx context.Context, oc *oauthv1alpha1.OAuthClient) (*notReady, error) {
	ns := &corev1.Namespace{}
	if err := r.Get(ctx, types.NamespacedName{Name: oc.Namespace}, ns); err != nil {
		return nil, fmt.Errorf("get Namespace %s: %w", oc.Namespace, err)
	}
	var problems []string
	for _, name := range oc.Spec.Audiences {
		api := &oauthv1alpha1.OAuthAPI{}
		if err := r.Get(ctx, types.NamespacedName{Name: name}, api); err != nil {
			if apierrors.IsNotFound(err) {
				problems = append(problems, fmt.Sprintf("OAuthAPI %q does not exist", name))
				continue
			}
			return nil, fmt.Errorf("get OAuthAPI %s: %w", name, err)
		}
		ok, err := api.Admits(ns)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		if !ok {
			problems = append(problems, fmt.Sprintf("OAuthAPI %q does not admit namespace %q", name, oc.Namespace))
		}
	}
	if len(problems) > 0 {
		return &notReady{oauthv1alpha1.ReasonAudienceNotAllowed, strings.Join(problems, "; ")}, nil
	}
	return nil, nil
}

// checkFederatedRules verifies that each rule of a FederatedToken client names an
// OAuthTrustedIssuer that exists, admits the client's namespace and whose
// requiredClientClaims the rule pins: what the token server checks of every token by
// the same rules (AllowedNamespaces.NamespaceSelector, MissingClientClaims).
func (r *OAuthClientReconciler) checkFederatedRules(ctx context.Context, oc *oauthv1alpha1.OAuthClient) (*notReady, error) {
	rules := oc.FederatedRules()
	if len(rules) == 0 {
		return nil, nil
	}
	ns := &corev1.Namespace{}
	if err := r.Get(ctx, types.NamespacedName{Name: oc.Namespace}, ns); err != nil {
		return nil, fmt.Errorf("get Namespace %s: %w", oc.Namespace, err)
	}
	var problems []string
	for i := range rules {
		rule := &rules[i]
		issuer := &oauthv1alpha1.OAuthTrustedIssuer{}
		if err := r.Get(ctx, types.NamespacedName{Name: rule.Issuer}, issuer); err != nil {
			if apierrors.IsNotFound(err) {
				problems = append(problems, fmt.Sprintf("federated[%d]: OAuthTrustedIssuer %q does not exist", i, rule.Issuer))
				continue
			}
			return nil, fmt.Errorf("get OAuthTrustedIssuer %s: %w", rule.Issuer, err)
		}
		sel, err := issuer.Spec.AllowedNamespaces.NamespaceSelector()
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("federated[%d]: OAuthTrustedIssuer %q has an invalid namespace selector: %v", i, rule.Issuer, err))
		case !sel.Matches(labels.Set(ns.Labels)):
			problems = append(problems, fmt.Sprintf("federated[%d]: OAuthTrustedIssuer %q does not admit namespace %q", i, rule.Issuer, oc.Namespace))
		}
		if missing := oauthv1alpha1.MissingClientClaims(issuer.Spec.RequiredClientClaims, rule.Claims); len(missing) > 0 {
			problems = append(problems, fmt.Sprintf("federated[%d]: the rule must pin the claims %s, which OAuthTrustedIssuer %q requires",
				i, strings.Join(quoteAll(missing), ", "), rule.Issuer))
		}
	}
	if len(problems) > 0 {
		return &notReady{oauthv1alpha1.ReasonFederatedRuleNotAllowed, strings.Join(problems, "; ")}, nil
	}
	return nil, nil
}

// checkPublicKeys refuses public keys of a PrivateKeyJWT client that cannot verify
// assertions (what CEL cannot tell: the PEM's content, the key's type and size), naming
// the first bad entry.
func checkPublicKeys(oc *oauthv1alpha1.OAuthClient) *notReady {
	if oc.AuthMethod() != oauthv1alpha1.AuthPrivateKeyJWT {
		return nil
	}
	for i, k := range oc.Spec.Authentication.PublicKeys {
		if _, err := signing.ParsePublicKeyPEM(k); err != nil {
			return &notReady{oauthv1alpha1.ReasonInvalidPublicKey,
				fmt.Sprintf("spec.authentication.publicKeys[%d] cannot verify assertions: %v", i, err)}
		}
	}
	return nil
}

// serviceAccountNote says, for a ServiceAccountToken client whose ServiceAccount does
// not exist (yet), that its tokens cannot be had until it does. The client stays
// Ready: a Deployment often creates its ServiceAccount after the client.
func (r *OAuthClientReconciler) serviceAccountNote(ctx context.Context, oc *oauthv1alpha1.OAuthClient) (string, error) {
	if oc.AuthMethod() != oauthv1alpha1.AuthServiceAccountToken {
		return "", nil
	}
	sa := &metav1.PartialObjectMetadata{}
	sa.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ServiceAccount"))
	key := types.NamespacedName{Namespace: oc.Namespace, Name: oc.Spec.Authentication.ServiceAccountName}
	err := r.Get(ctx, key, sa)
	if apierrors.IsNotFound(err) {
		return fmt.Sprintf("; ServiceAccount %q does not exist yet: its pods can get tokens once it does", key.Name), nil
	}
	if err != nil {
		return "", fmt.Errorf("get ServiceAccount %s: %w", key, err)
	}
	return "", nil
}

func (r *OAuthClientReconciler) managedData(oc *oauthv1alpha1.OAuthClient) map[string][]byte {
	return map[string][]byte{
		oauthv1alpha1.SecretKeyClientID: []byte(oc.ClientID()),
		oauthv1alpha1.SecretKeyTokenURL: []byte(r.Config.TokenURL()),
		oauthv1alpha1.SecretKeyIssuer:   []byte(r.Config.Issuer),
	}
}

func (r *OAuthClientReconciler) clock() clock.PassiveClock {
	if r.Clock == nil {
		return clock.RealClock{}
	}
	return r.Clock
}

func secretLabels(oc *oauthv1alpha1.OAuthClient) map[string]string {
	return map[string]string{
		oauthv1alpha1.ManagedByLabel: oauthv1alpha1.ManagedByValue,
		oauthv1alpha1.ClientLabel:    oc.Name,
	}
}

// SetupWithManager adds the indexes the controller lists by (IndexFields) and registers
// the controller (SetupControllerWithManager) on one manager.
func (r *OAuthClientReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if err := IndexFields(ctx, mgr.GetFieldIndexer()); err != nil {
		return err
	}
	return r.SetupControllerWithManager(mgr)
}

// IndexFields adds the cache indexes the OAuthClient controller lists by
// (AudienceIndex, ServiceAccountIndex, TrustedIssuerIndex).
// Call it once per cache, before the cache starts: a manager that runs the controller
// only while it leads indexes its long-lived cache here and registers the controller
// on every term's manager with SetupControllerWithManager.
func IndexFields(ctx context.Context, indexer client.FieldIndexer) error {
	if err := indexer.IndexField(ctx, &oauthv1alpha1.OAuthClient{}, AudienceIndex, func(o client.Object) []string {
		return o.(*oauthv1alpha1.OAuthClient).Spec.Audiences
	}); err != nil {
		return fmt.Errorf("index OAuthClients by audience: %w", err)
	}
	if err := indexer.IndexField(ctx, &oauthv1alpha1.OAuthClient{}, ServiceAccountIndex, func(o client.Object) []string {
		if a := o.(*oauthv1alpha1.OAuthClient).Spec.Authentication; a != nil && a.ServiceAccountName != "" {
			return []string{a.ServiceAccountName}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("index OAuthClients by ServiceAccount: %w", err)
	}
	if err := indexer.IndexField(ctx, &oauthv1alpha1.OAuthClient{}, TrustedIssuerIndex, func(o client.Object) []string {
		var names []string
		for _, r := range o.(*oauthv1alpha1.OAuthClient).FederatedRules() {
			if !slices.Contains(names, r.Issuer) {
				names = append(names, r.Issuer)
			}
		}
		return names
	}); err != nil {
		return fmt.Errorf("index OAuthClients by trusted issuer: %w", err)
	}
	return nil
}

// SetupControllerWithManager registers the controller and its watches: the client, the
// Secrets it owns, the OAuthAPIs and OAuthTrustedIssuers it names (their specs), the
// labels of its Namespace and its ServiceAccount. The manager's cache must have the indexes of IndexFields.
func (r *OAuthClientReconciler) SetupControllerWithManager(mgr ctrl.Manager) error {
	if r.Config == nil {
		return errors.New("set up OAuthClient controller: no config")
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&oauthv1alpha1.OAuthClient{}).
		Owns(&corev1.Secret{}).
		Watches(&oauthv1alpha1.OAuthAPI{}, handler.EnqueueRequestsFromMapFunc(r.clientsOfAPI)).
		Watches(&oauthv1alpha1.OAuthTrustedIssuer{}, handler.EnqueueRequestsFromMapFunc(r.clientsOfTrustedIssuer),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		// Nothing about a Namespace matters to a client but its labels.
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.clientsInNamespace),
			builder.WithPredicates(predicate.LabelChangedPredicate{})).
		// Metadata only: a ServiceAccount's existence is all a client's status says.
		Watches(&corev1.ServiceAccount{}, handler.EnqueueRequestsFromMapFunc(r.clientsOfServiceAccount),
			builder.OnlyMetadata, builder.WithPredicates(createdOrDeleted())).
		Named("oauthclient").
		WithOptions(controller.Options{MaxConcurrentReconciles: cmp.Or(r.Workers, config.DefaultReconcileWorkers)}).
		Complete(r)
}

func (r *OAuthClientReconciler) clientsOfAPI(ctx context.Context, o client.Object) []reconcile.Request {
	list := &oauthv1alpha1.OAuthClientList{}
	if err := r.List(ctx, list, client.MatchingFields{AudienceIndex: o.GetName()}); err != nil {
		logf.FromContext(ctx).Error(err, "list OAuthClients of OAuthAPI", "oauthapi", o.GetName())
		return nil
	}
	return requestsFor(list)
}

func (r *OAuthClientReconciler) clientsOfTrustedIssuer(ctx context.Context, o client.Object) []reconcile.Request {
	list := &oauthv1alpha1.OAuthClientList{}
	if err := r.List(ctx, list, client.MatchingFields{TrustedIssuerIndex: o.GetName()}); err != nil {
		logf.FromContext(ctx).Error(err, "list OAuthClients of OAuthTrustedIssuer", "oauthtrustedissuer", o.GetName())
		return nil
	}
	return requestsFor(list)
}

func (r *OAuthClientReconciler) clientsInNamespace(ctx context.Context, o client.Object) []reconcile.Request {
	list := &oauthv1alpha1.OAuthClientList{}
	if err := r.List(ctx, list, client.InNamespace(o.GetName())); err != nil {
		logf.FromContext(ctx).Error(err, "list OAuthClients in namespace", "namespace", o.GetName())
		return nil
	}
	return requestsFor(list)
}

func (r *OAuthClientReconciler) clientsOfServiceAccount(ctx context.Context, o client.Object) []reconcile.Request {
	list := &oauthv1alpha1.OAuthClientList{}
	if err := r.List(ctx, list, client.InNamespace(o.GetNamespace()), client.MatchingFields{ServiceAccountIndex: o.GetName()}); err != nil {
		logf.FromContext(ctx).Error(err, "list OAuthClients of ServiceAccount", "namespace", o.GetNamespace(), "serviceaccount", o.GetName())
		return nil
	}
	return requestsFor(list)
}

// createdOrDeleted passes only creations and deletions.
func createdOrDeleted() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc:  func(event.UpdateEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
}

func requestsFor(list *oauthv1alpha1.OAuthClientList) []reconcile.Request {
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
	return reqs
}
