// Package controllers holds the operator's reconcilers.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
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

// Event reasons a user may see on an OAuthClient.
const (
	EventSecretCreated     = "SecretCreated"
	EventSecretRecreated   = "SecretRecreated"
	EventSecretRepaired    = "SecretRepaired"
	EventSecretRegenerated = "SecretRegenerated"
	EventSecretConflict    = "SecretConflict"
	EventSecretRotated     = "SecretRotated"
	EventSecretRemoved     = "SecretRemoved"
)

// OAuthClientReconciler turns each OAuthClient into a Secret of credentials and reports
// whether the client can obtain tokens.
type OAuthClientReconciler struct {
	// Client reads from the manager's cache (Secrets: only the operator's) and writes
	// to the API server.
	client.Client
	// APIReader reads from the API server directly; used only to inspect a Secret of
	// the wanted name that the cache does not hold.
	APIReader client.Reader
	Scheme    *runtime.Scheme
	Recorder  events.EventRecorder
	// Issuer is the token server's public base URL; token_url is Issuer + "/oauth2-token".
	Issuer string
	// Now is the clock; time.Now when nil. Tests drive rotation with it.
	Now func() time.Time
	// Workers is how many clients are reconciled at once (0: controller-runtime's default, 1).
	Workers int
	// KeyAlgorithm is the family of the key pairs generated for PrivateKeyJWT clients:
	// the operator's signing algorithm (ES256 when unset).
	KeyAlgorithm signing.Algorithm
}

func (r *OAuthClientReconciler) keyAlgorithm() signing.Algorithm {
	if r.KeyAlgorithm == "" {
		return signing.DefaultAlgorithm
	}
	return r.KeyAlgorithm
}

// notReady is why a client is not Ready: a state the user must change, not an error
// to retry.
type notReady struct {
	reason, message string
}

// +kubebuilder:rbac:groups=oauth.operator.dev,resources=oauthclients,verbs=get;list;watch
// +kubebuilder:rbac:groups=oauth.operator.dev,resources=oauthclients/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=oauth.operator.dev,resources=oauthclients/finalizers,verbs=update
// +kubebuilder:rbac:groups=oauth.operator.dev,resources=oauthapis,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=serviceaccounts,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile makes the client's Secret hold its credentials, then records in status
// whether every audience admits the client.
func (r *OAuthClientReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	oc := &oauthv1alpha1.OAuthClient{}
	if err := r.Get(ctx, req.NamespacedName, oc); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !oc.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil // the Secret goes with it (owner reference)
	}
	before := oc.DeepCopy()

	secret, problem, err := r.ensureSecret(ctx, oc)
	var requeue time.Duration
	if err == nil && secret != nil {
		requeue, err = r.maintainSecret(ctx, oc, secret)
	}
	if err == nil && problem == nil {
		problem = checkPublicKeys(oc)
	}
	if err == nil && problem == nil {
		problem, err = r.checkAudiences(ctx, oc)
	}
	if err == nil && problem == nil && oc.Spec.Disabled {
		problem = &notReady{oauthv1alpha1.ReasonDisabled, "the client is disabled: its credentials are kept, no tokens are issued"}
	}
	var note string
	if err == nil && problem == nil {
		note, err = r.serviceAccountNote(ctx, oc)
	}
	if statusErr := r.writeStatus(ctx, before, oc, secret, problem, note, err); statusErr != nil {
		return ctrl.Result{}, errors.Join(err, statusErr)
	}
	return ctrl.Result{RequeueAfter: requeue}, err
}

func (r *OAuthClientReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// ensureSecret returns the client's Secret, creating it when missing. It never
// touches a Secret this client does not control: that is a SecretConflict.
func (r *OAuthClientReconciler) ensureSecret(ctx context.Context, oc *oauthv1alpha1.OAuthClient) (*corev1.Secret, *notReady, error) {
	key := types.NamespacedName{Namespace: oc.Namespace, Name: oc.EffectiveSecretName()}
	secret := &corev1.Secret{}
	err := r.Get(ctx, key, secret)
	if apierrors.IsNotFound(err) {
		created, err := r.createSecret(ctx, oc, key)
		if err == nil {
			r.recordCreated(oc, created)
			return created, nil, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return nil, nil, err
		}
		// It exists, but not in the cache: it lacks the managed-by label. Look at it
		// directly; it may still be ours, with its label removed by hand.
		if err := r.APIReader.Get(ctx, key, secret); err != nil {
			return nil, nil, fmt.Errorf("get Secret %s: %w", key, err)
		}
	} else if err != nil {
		return nil, nil, fmt.Errorf("get Secret %s: %w", key, err)
	}

	if oauthv1alpha1.SecretOwner(secret) != oc.UID {
		msg := fmt.Sprintf("Secret %q exists and is not controlled by this OAuthClient; it was left untouched (delete it, or set spec.secretName on a new client)", key.Name)
		if !hasReason(oc, oauthv1alpha1.ReasonSecretConflict) {
			r.Recorder.Eventf(oc, nil, corev1.EventTypeWarning, EventSecretConflict, "Reconcile", msg)
		}
		return nil, &notReady{oauthv1alpha1.ReasonSecretConflict, msg}, nil
	}
	return secret, nil, nil
}

// createSecret creates the Secret with fresh credentials.
func (r *OAuthClientReconciler) createSecret(ctx context.Context, oc *oauthv1alpha1.OAuthClient, key types.NamespacedName) (*corev1.Secret, error) {
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: key.Namespace, Name: key.Name, Labels: secretLabels(oc),
		},
		Type: corev1.SecretTypeOpaque,
		Data: r.managedData(oc),
	}
	if cred := r.credentialFor(oc); cred != nil {
		generated, err := cred.generate()
		if err != nil {
			return nil, err
		}
		install(secret.Data, generated)
		secret.Annotations = map[string]string{oauthv1alpha1.SecretRotatedAtAnnotation: formatTime(r.now())}
		// A rotation requested before the Secret existed is served by its creation.
		if trigger := oc.Annotations[oauthv1alpha1.RotateSecretAnnotation]; trigger != "" {
			secret.Annotations[oauthv1alpha1.RotationTriggerAnnotation] = trigger
		}
	}
	if err := controllerutil.SetControllerReference(oc, secret, r.Scheme); err != nil {
		return nil, fmt.Errorf("set owner of Secret %s: %w", key, err)
	}
	if err := r.Create(ctx, secret); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return nil, err
		}
		return nil, fmt.Errorf("create Secret %s: %w", key, err)
	}
	logf.FromContext(ctx).Info("created credential Secret", "secret", key.Name)
	return secret, nil
}

func (r *OAuthClientReconciler) recordCreated(oc *oauthv1alpha1.OAuthClient, secret *corev1.Secret) {
	if oc.Status.SecretName == secret.Name {
		r.Recorder.Eventf(oc, secret, corev1.EventTypeWarning, EventSecretRecreated, "Reconcile",
			"Secret %q was deleted; created it again with a new client secret: workloads must use the new one", secret.Name)
		return
	}
	r.Recorder.Eventf(oc, secret, corev1.EventTypeNormal, EventSecretCreated, "Reconcile", "created Secret %q with the client's credentials", secret.Name)
}

// maintainSecret keeps a Secret this client controls right: it restores labels and
// managed keys changed by hand, removes credentials of another method, regenerates a
// missing or unusable credential (client secret or key pair), rotates it when its
// interval has passed or the rotate-secret annotation has a new value, and drops the
// previous one when its grace period ends. All changes go out in one patch. It returns
// when to look again.
func (r *OAuthClientReconciler) maintainSecret(ctx context.Context, oc *oauthv1alpha1.OAuthClient, secret *corev1.Secret) (time.Duration, error) {
	orig := secret.DeepCopy()
	now := r.now()
	fixed := r.repair(oc, secret)
	cred := r.credentialFor(oc)
	dropped := dropOtherCredentials(secret, cred)
	if cred == nil {
		if err := r.patchSecret(ctx, orig, secret); err != nil {
			return 0, err
		}
		r.reportRepairs(ctx, oc, secret, fixed)
		if dropped {
			logf.FromContext(ctx).Info("removed the stored credentials: the client's method needs none in its Secret", "secret", secret.Name, "method", oc.AuthMethod())
			r.Recorder.Eventf(oc, secret, corev1.EventTypeNormal, EventSecretRemoved, "Reconcile",
				"removed the stored credentials from Secret %q: the client authenticates by %s", secret.Name, oc.AuthMethod())
		}
		return 0, nil
	}

	regenerated := !cred.valid(secret.Data)
	// Generated for a client that had none of this kind: it has just switched methods.
	switched := regenerated && (dropped || orig.Annotations[oauthv1alpha1.SecretRotatedAtAnnotation] == "")
	rotation := ""
	if !regenerated {
		rotation = rotationDue(oc, secret, now)
	}
	if regenerated || rotation != "" {
		generated, err := cred.generate()
		if err != nil {
			return 0, err
		}
		if rotation != "" {
			if err := keepPrevious(secret, cred, gracePeriod(oc), now); err != nil {
				return 0, fmt.Errorf("rotate the %s of Secret %s/%s: %w", cred.name, secret.Namespace, secret.Name, err)
			}
		}
		install(secret.Data, generated)
		setAnnotation(secret, oauthv1alpha1.SecretRotatedAtAnnotation, formatTime(now))
	}
	if trigger := oc.Annotations[oauthv1alpha1.RotateSecretAnnotation]; trigger != "" {
		setAnnotation(secret, oauthv1alpha1.RotationTriggerAnnotation, trigger)
	}
	if _, ok := secret.Annotations[oauthv1alpha1.SecretRotatedAtAnnotation]; !ok {
		setAnnotation(secret, oauthv1alpha1.SecretRotatedAtAnnotation, formatTime(now))
	}
	expired := expirePrevious(secret, cred, now)

	if err := r.patchSecret(ctx, orig, secret); err != nil {
		return 0, err
	}
	log := logf.FromContext(ctx)
	r.reportRepairs(ctx, oc, secret, fixed)
	switch {
	case switched:
		log.Info("generated a credential for the client's method", "secret", secret.Name, "credential", cred.name, "method", oc.AuthMethod())
		r.Recorder.Eventf(oc, secret, corev1.EventTypeNormal, EventSecretCreated, "Reconcile",
			"generated a %s in Secret %q: the client authenticates by %s", cred.name, secret.Name, oc.AuthMethod())
	case regenerated:
		log.Info("generated a new credential: the stored one was missing or unusable", "secret", secret.Name, "credential", cred.name)
		r.Recorder.Eventf(oc, secret, corev1.EventTypeWarning, EventSecretRegenerated, "Reconcile",
			"the %s of Secret %q was missing or unusable (a client secret needs %d characters); generated a new one", cred.name, secret.Name, minClientSecretLen)
	}
	if rotation != "" {
		grace := gracePeriod(oc)
		SecretRotations.WithLabelValues(rotation).Inc()
		log.Info("rotated client credential", "secret", secret.Name, "credential", cred.name, "trigger", rotation, "gracePeriod", grace.String())
		r.Recorder.Eventf(oc, secret, corev1.EventTypeNormal, EventSecretRotated, "Rotate",
			"rotated the %s in Secret %q (trigger: %s); the previous one works for %s more", cred.name, secret.Name, rotation, grace)
	}
	if expired {
		log.Info("previous client credential expired", "secret", secret.Name, "credential", cred.name)
	}
	return nextCheck(oc, secret, now), nil
}

// patchSecret writes secret's changes against orig, if any, in one patch.
func (r *OAuthClientReconciler) patchSecret(ctx context.Context, orig, secret *corev1.Secret) error {
	if equality.Semantic.DeepEqual(orig.Data, secret.Data) && equality.Semantic.DeepEqual(orig.ObjectMeta, secret.ObjectMeta) {
		return nil
	}
	if err := r.Patch(ctx, secret, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("update Secret %s/%s: %w", secret.Namespace, secret.Name, err)
	}
	return nil
}

func (r *OAuthClientReconciler) reportRepairs(ctx context.Context, oc *oauthv1alpha1.OAuthClient, secret *corev1.Secret, fixed []string) {
	if len(fixed) == 0 {
		return
	}
	logf.FromContext(ctx).Info("restored credential Secret", "secret", secret.Name, "fields", fixed)
	r.Recorder.Eventf(oc, secret, corev1.EventTypeWarning, EventSecretRepaired, "Reconcile",
		"restored %v of Secret %q, which were changed by hand", fixed, secret.Name)
}

// repair restores labels and managed keys; it returns what it changed.
func (r *OAuthClientReconciler) repair(oc *oauthv1alpha1.OAuthClient, secret *corev1.Secret) []string {
	var fixed []string
	for k, v := range secretLabels(oc) {
		if secret.Labels[k] != v {
			if secret.Labels == nil {
				secret.Labels = map[string]string{}
			}
			secret.Labels[k] = v
			fixed = append(fixed, "label "+k)
		}
	}
	if secret.Data == nil {
		secret.Data = map[string][]byte{}
	}
	for k, v := range r.managedData(oc) {
		if string(secret.Data[k]) != string(v) {
			secret.Data[k] = v
			fixed = append(fixed, k)
		}
	}
	return fixed
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

// writeStatus writes the status once, and only when it changed. note is added to the
// message of a Ready client.
func (r *OAuthClientReconciler) writeStatus(ctx context.Context, before, oc *oauthv1alpha1.OAuthClient, secret *corev1.Secret, problem *notReady, note string, reconcileErr error) error {
	st := &oc.Status
	if secret != nil {
		st.LastSecretRotationTime = annotationTime(secret, oauthv1alpha1.SecretRotatedAtAnnotation)
		st.PreviousSecretExpiryTime = annotationTime(secret, oauthv1alpha1.PreviousSecretExpiresAnnotation)
		st.NextSecretRotationTime = nil
		if last := st.LastSecretRotationTime; last != nil && rotationInterval(oc) > 0 {
			st.NextSecretRotationTime = &metav1.Time{Time: last.Add(rotationInterval(oc))}
		}
	}
	st.ClientID = oc.ClientID()
	st.TokenURL = r.Issuer + config.TokenPath
	st.ObservedGeneration = oc.Generation
	cond := metav1.Condition{
		Type:               oauthv1alpha1.ConditionReady,
		Status:             metav1.ConditionTrue,
		Reason:             oauthv1alpha1.ReasonReady,
		Message:            readyMessage(oc) + note,
		ObservedGeneration: oc.Generation,
	}
	switch {
	case reconcileErr != nil:
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, oauthv1alpha1.ReasonReconcileError, reconcileErr.Error()
	case problem != nil:
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, problem.reason, problem.message
	}
	if reconcileErr == nil && (problem == nil || problem.reason != oauthv1alpha1.ReasonSecretConflict) {
		st.SecretName = oc.EffectiveSecretName()
	}
	meta.SetStatusCondition(&st.Conditions, cond)
	if equality.Semantic.DeepEqual(before.Status, oc.Status) {
		return nil
	}
	// A client deleted meanwhile needs no status.
	if err := client.IgnoreNotFound(r.Status().Patch(ctx, oc, client.MergeFrom(before))); err != nil {
		return fmt.Errorf("update status of OAuthClient %s/%s: %w", oc.Namespace, oc.Name, err)
	}
	return nil
}

func readyMessage(oc *oauthv1alpha1.OAuthClient) string {
	switch {
	case oc.AuthMethod() == oauthv1alpha1.AuthServiceAccountToken:
		return fmt.Sprintf("Secret %s holds where to ask; the client authenticates with tokens of ServiceAccount %s", oc.EffectiveSecretName(), oc.Spec.Authentication.ServiceAccountName)
	case oc.AuthMethod() == oauthv1alpha1.AuthPrivateKeyJWT && !oc.GeneratesKey():
		return fmt.Sprintf("Secret %s holds where to ask; the client signs assertions with the private halves of its %d public key(s)", oc.EffectiveSecretName(), len(oc.Spec.Authentication.PublicKeys))
	}
	return "credentials are in Secret " + oc.EffectiveSecretName()
}

func (r *OAuthClientReconciler) managedData(oc *oauthv1alpha1.OAuthClient) map[string][]byte {
	return map[string][]byte{
		oauthv1alpha1.SecretKeyClientID: []byte(oc.ClientID()),
		oauthv1alpha1.SecretKeyTokenURL: []byte(r.Issuer + config.TokenPath),
		oauthv1alpha1.SecretKeyIssuer:   []byte(r.Issuer),
	}
}

func secretLabels(oc *oauthv1alpha1.OAuthClient) map[string]string {
	return map[string]string{
		oauthv1alpha1.ManagedByLabel: oauthv1alpha1.ManagedByValue,
		oauthv1alpha1.ClientLabel:    oc.Name,
	}
}

func hasReason(oc *oauthv1alpha1.OAuthClient, reason string) bool {
	c := meta.FindStatusCondition(oc.Status.Conditions, oauthv1alpha1.ConditionReady)
	return c != nil && c.Reason == reason
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
// (AudienceIndex, ServiceAccountIndex).
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
	return nil
}

// SetupControllerWithManager registers the controller and its watches: the client, the
// Secrets it owns, the OAuthAPIs it names, the labels of its Namespace and its
// ServiceAccount. The manager's cache must have the indexes of IndexFields.
func (r *OAuthClientReconciler) SetupControllerWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&oauthv1alpha1.OAuthClient{}).
		Owns(&corev1.Secret{}).
		Watches(&oauthv1alpha1.OAuthAPI{}, handler.EnqueueRequestsFromMapFunc(r.clientsOfAPI)).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.clientsInNamespace),
			builder.WithPredicates(labelsChanged())).
		// Metadata only: a ServiceAccount's existence is all a client's status says.
		Watches(&corev1.ServiceAccount{}, handler.EnqueueRequestsFromMapFunc(r.clientsOfServiceAccount),
			builder.OnlyMetadata, builder.WithPredicates(createdOrDeleted())).
		Named("oauthclient").
		WithOptions(controller.Options{MaxConcurrentReconciles: r.Workers}).
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

// labelsChanged passes namespace creations and label changes; nothing else about a
// Namespace matters to a client.
func labelsChanged() predicate.Predicate {
	return predicate.Funcs{
		CreateFunc:  func(event.CreateEvent) bool { return true },
		DeleteFunc:  func(event.DeleteEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
		UpdateFunc: func(e event.UpdateEvent) bool {
			return !equality.Semantic.DeepEqual(e.ObjectOld.GetLabels(), e.ObjectNew.GetLabels())
		},
	}
}
