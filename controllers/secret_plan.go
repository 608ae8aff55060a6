package controllers

import (
	"fmt"
	"maps"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
)

// A client's Secret is kept right in three steps: planSecret decides what it needs from
// the client, the Secret and the time alone (no API call, no key generation, so its
// tests need no API server); secretPlan.applyTo makes those changes to a copy (the only
// step that generates keys); the reconciler writes the copy in one request and reports
// the plan (events, logs, metrics).

// secretState is everything planSecret decides from.
type secretState struct {
	client *oauthv1alpha1.OAuthClient
	// secret is the Secret the client controls; nil when none exists.
	secret *corev1.Secret
	// cred is the credential the operator generates for the client; nil when its method
	// needs none in the Secret.
	cred *credential
	// managed are the keys every credential Secret holds (client_id, token_url, issuer).
	managed map[string][]byte
	now     time.Time
	// minRequestInterval is the shortest time between two rotations the rotate-secret
	// annotation requests.
	minRequestInterval time.Duration
}

// generation is why a plan generates a new credential.
type generation string

const (
	genNone       generation = ""
	genCreate     generation = "create"     // the Secret is created with it
	genSwitch     generation = "switch"     // the client's method switched to one that needs it
	genRegenerate generation = "regenerate" // the stored one is missing or unusable
	genRotate     generation = "rotate"     // a rotation (by interval or annotation)
)

// plannedEvent is an event the plan emits on the client once it is written.
type plannedEvent struct {
	eventType, reason, action, note string
}

// secretPlan is what a client's Secret needs.
type secretPlan struct {
	// create: no Secret exists; it is created with everything below.
	create bool
	// setLabels and setData are labels and managed keys to write; repaired names
	// those of an existing Secret that were changed by hand.
	setLabels map[string]string
	setData   map[string][]byte
	repaired  []string
	// removeData are keys to delete: credentials of another kind (leftovers of another
	// method), the previous credential when its grace period is over.
	removeData []string
	// generate is why a new credential is generated; genNone when none is.
	generate generation
	// rotation is the trigger of a rotation (rotationByInterval, rotationByAnnotation)
	// when generate is genRotate.
	rotation string
	// keepPrevious keeps what verifies the current credential as the previous one (a
	// rotation with a grace period).
	keepPrevious bool
	// expired: the previous credential's grace period is over (removeData drops it).
	expired bool
	// removed: credentials were removed because the method needs none in the Secret.
	removed bool
	// setAnnotations and removeAnnotations are the rotation state to write.
	setAnnotations    map[string]string
	removeAnnotations []string
	// deferredUntil is when a rotation the annotation requested, and that waits for the
	// minimum interval, becomes allowed; zero when none waits.
	deferredUntil time.Time
	// events are what the user is told once the plan is written.
	events []plannedEvent
	// requeue is when to look again (the next rotation, expiry or deferred rotation);
	// 0 when nothing is pending.
	requeue time.Duration
}

// empty reports whether the plan changes nothing.
func (p *secretPlan) empty() bool {
	return !p.create && len(p.setLabels) == 0 && len(p.setData) == 0 && len(p.removeData) == 0 &&
		p.generate == genNone && len(p.setAnnotations) == 0 && len(p.removeAnnotations) == 0
}

func (p *secretPlan) annotate(k, v string) {
	if p.setAnnotations == nil {
		p.setAnnotations = map[string]string{}
	}
	p.setAnnotations[k] = v
	p.removeAnnotations = slices.DeleteFunc(p.removeAnnotations, func(a string) bool { return a == k })
}

func (p *secretPlan) unannotate(k string) {
	delete(p.setAnnotations, k)
	if !slices.Contains(p.removeAnnotations, k) {
		p.removeAnnotations = append(p.removeAnnotations, k)
	}
}

func (p *secretPlan) emit(eventType, reason, action, format string, args ...any) {
	p.events = append(p.events, plannedEvent{eventType, reason, action, fmt.Sprintf(format, args...)})
}

// planSecret decides what the client's Secret needs.
func planSecret(in secretState) secretPlan {
	if in.secret == nil {
		return planCreate(in)
	}
	var p secretPlan
	p.planRestore(in)
	p.planLeftovers(in)
	if in.cred != nil {
		p.planGeneration(in)
		p.planExpiry(in)
	}
	p.requeue = nextCheck(in.client, p.annotationsAfter(in.secret), p.deferredUntil, in.now)
	return p
}

// planCreate plans a new Secret: labels, managed keys and a fresh credential. A
// rotation requested before the Secret existed is served by its creation.
func planCreate(in secretState) secretPlan {
	oc, name := in.client, in.client.EffectiveSecretName()
	p := secretPlan{create: true, setLabels: secretLabels(oc), setData: maps.Clone(in.managed)}
	if in.cred != nil {
		p.generate = genCreate
		p.annotate(oauthv1alpha1.SecretRotatedAtAnnotation, oauthv1alpha1.FormatRotationTime(in.now))
		if trigger := oc.Annotations[oauthv1alpha1.RotateSecretAnnotation]; trigger != "" {
			p.annotate(oauthv1alpha1.RotationTriggerAnnotation, oauthv1alpha1.RotationTrigger(trigger))
			p.annotate(oauthv1alpha1.RotationTriggerHandledAtAnnotation, oauthv1alpha1.FormatRotationTime(in.now))
		}
	}
	if oc.Status.SecretName == name {
		p.emit(corev1.EventTypeWarning, EventSecretRecreated, "Reconcile",
			"Secret %q was deleted; created it again with a new client secret: workloads must use the new one", name)
	} else {
		p.emit(corev1.EventTypeNormal, EventSecretCreated, "Reconcile", "created Secret %q with the client's credentials", name)
	}
	p.requeue = nextCheck(oc, p.setAnnotations, time.Time{}, in.now)
	return p
}

// planRestore restores labels and managed keys changed by hand.
func (p *secretPlan) planRestore(in secretState) {
	for k, v := range secretLabels(in.client) {
		if got, ok := in.secret.Labels[k]; !ok || got != v {
			if p.setLabels == nil {
				p.setLabels = map[string]string{}
			}
			p.setLabels[k] = v
			p.repaired = append(p.repaired, "label "+k)
		}
	}
	for k, v := range in.managed {
		if got, ok := in.secret.Data[k]; !ok || string(got) != string(v) {
			if p.setData == nil {
				p.setData = map[string][]byte{}
			}
			p.setData[k] = v
			p.repaired = append(p.repaired, k)
		}
	}
	slices.Sort(p.repaired)
	if len(p.repaired) > 0 {
		p.emit(corev1.EventTypeWarning, EventSecretRepaired, "Reconcile",
			"restored %v of Secret %q, which were changed by hand", p.repaired, in.secret.Name)
	}
}

// planLeftovers removes every credential that is not of the client's kind (all of
// them, with the rotation state, when its method needs none in the Secret).
func (p *secretPlan) planLeftovers(in secretState) {
	keep := map[string]bool{}
	if c := in.cred; c != nil {
		for _, k := range c.current {
			keep[k] = true
		}
		keep[c.previous] = true
	}
	for _, k := range credentialKeys {
		if _, ok := in.secret.Data[k]; ok && !keep[k] {
			p.removeData = append(p.removeData, k)
		}
	}
	if in.cred != nil {
		return
	}
	for _, a := range oauthv1alpha1.CredentialSecretAnnotations {
		if _, ok := in.secret.Annotations[a]; ok {
			p.unannotate(a)
		}
	}
	if len(p.removeData) > 0 {
		p.removed = true
		p.emit(corev1.EventTypeNormal, EventSecretRemoved, "Reconcile",
			"removed the stored credentials from Secret %q: the client authenticates by %s", in.secret.Name, in.client.AuthMethod())
	}
}

// planGeneration decides whether a new credential is generated: a missing or unusable
// one is replaced; otherwise it rotates when its interval has passed or the
// rotate-secret annotation has a new value, the latter no sooner than the minimum
// interval after the last rotation the annotation requested.
func (p *secretPlan) planGeneration(in secretState) {
	oc, secret, c, now := in.client, in.secret, in.cred, in.now
	times := oauthv1alpha1.ReadRotationTimes(secret)
	trigger := oc.Annotations[oauthv1alpha1.RotateSecretAnnotation]
	requested := trigger != "" && oauthv1alpha1.RotationTrigger(trigger) != secret.Annotations[oauthv1alpha1.RotationTriggerAnnotation]
	switch {
	case !c.valid(secret.Data):
		p.generate = genRegenerate
		// Generated for a client that had none of this kind: it has just switched methods.
		if len(p.removeData) > 0 || secret.Annotations[oauthv1alpha1.SecretRotatedAtAnnotation] == "" {
			p.generate = genSwitch
		}
	case requested && !requestAllowed(times, in.minRequestInterval, now):
		p.deferredUntil = times.TriggerHandledAt.Add(in.minRequestInterval)
		if intervalDue(oc, times, now) {
			p.generate, p.rotation = genRotate, rotationByInterval
		}
	case requested:
		p.generate, p.rotation = genRotate, rotationByAnnotation
	case intervalDue(oc, times, now):
		p.generate, p.rotation = genRotate, rotationByInterval
	}
	if p.generate != genNone {
		p.annotate(oauthv1alpha1.SecretRotatedAtAnnotation, oauthv1alpha1.FormatRotationTime(now))
		if requested { // the new credential serves the request
			p.deferredUntil = time.Time{}
			p.annotate(oauthv1alpha1.RotationTriggerAnnotation, oauthv1alpha1.RotationTrigger(trigger))
			p.annotate(oauthv1alpha1.RotationTriggerHandledAtAnnotation, oauthv1alpha1.FormatRotationTime(now))
		}
	} else if times.RotatedAt.IsZero() {
		p.annotate(oauthv1alpha1.SecretRotatedAtAnnotation, oauthv1alpha1.FormatRotationTime(now))
	}
	if p.generate == genRotate {
		p.planPrevious(in)
	}
	p.planGenerationEvents(in)
}

// planPrevious keeps what verifies the rotated credential as the previous one for the
// client's grace period; with none, the previous one goes at once.
func (p *secretPlan) planPrevious(in secretState) {
	grace := in.client.SecretGracePeriod()
	p.keepPrevious = grace > 0
	if p.keepPrevious {
		p.annotate(oauthv1alpha1.PreviousSecretExpiresAnnotation, oauthv1alpha1.FormatRotationTime(in.now.Add(grace)))
		return
	}
	if _, ok := in.secret.Data[in.cred.previous]; ok {
		p.removeData = append(p.removeData, in.cred.previous)
	}
	if _, ok := in.secret.Annotations[oauthv1alpha1.PreviousSecretExpiresAnnotation]; ok {
		p.unannotate(oauthv1alpha1.PreviousSecretExpiresAnnotation)
	}
}

func (p *secretPlan) planGenerationEvents(in secretState) {
	name, c, method := in.secret.Name, in.cred, in.client.AuthMethod()
	switch p.generate {
	case genSwitch:
		p.emit(corev1.EventTypeNormal, EventSecretCreated, "Reconcile",
			"generated a %s in Secret %q: the client authenticates by %s", c.name, name, method)
	case genRegenerate:
		p.emit(corev1.EventTypeWarning, EventSecretRegenerated, "Reconcile",
			"the %s of Secret %q was missing or unusable (a client secret needs %d characters); generated a new one", c.name, name, minClientSecretLen)
	case genRotate:
		p.emit(corev1.EventTypeNormal, EventSecretRotated, "Rotate",
			"rotated the %s in Secret %q (trigger: %s); the previous one works for %s more", c.name, name, p.rotation, in.client.SecretGracePeriod())
	}
	if !p.deferredUntil.IsZero() {
		p.emit(corev1.EventTypeNormal, EventSecretRotationDeferred, "Rotate",
			"the rotation %s requests waits until %s: requested rotations of a client are at least %s apart",
			oauthv1alpha1.RotateSecretAnnotation, oauthv1alpha1.FormatRotationTime(p.deferredUntil), in.minRequestInterval)
	}
}

// planExpiry drops the previous credential once its grace period is over (or when its
// expiry is unreadable), and an expiry that describes no previous credential.
func (p *secretPlan) planExpiry(in secretState) {
	if p.generate == genRotate {
		return // the rotation has just set the previous credential and its expiry
	}
	_, hasPrevious := in.secret.Data[in.cred.previous]
	_, hasExpiry := in.secret.Annotations[oauthv1alpha1.PreviousSecretExpiresAnnotation]
	until := oauthv1alpha1.ReadRotationTimes(in.secret).PreviousExpiresAt
	switch {
	case !hasPrevious && hasExpiry:
		p.unannotate(oauthv1alpha1.PreviousSecretExpiresAnnotation)
	case hasPrevious && (until.IsZero() || !in.now.Before(until)):
		p.expired = true
		p.removeData = append(p.removeData, in.cred.previous)
		if hasExpiry {
			p.unannotate(oauthv1alpha1.PreviousSecretExpiresAnnotation)
		}
	}
}

// annotationsAfter are the Secret's annotations once the plan is written.
func (p *secretPlan) annotationsAfter(secret *corev1.Secret) map[string]string {
	after := maps.Clone(secret.Annotations)
	if after == nil {
		after = map[string]string{}
	}
	maps.Copy(after, p.setAnnotations)
	for _, k := range p.removeAnnotations {
		delete(after, k)
	}
	return after
}

// applyTo makes the plan's changes to secret (a copy the caller writes), generating
// the planned credential of kind c.
func (p *secretPlan) applyTo(secret *corev1.Secret, c *credential) error {
	for k, v := range p.setLabels {
		metav1.SetMetaDataLabel(&secret.ObjectMeta, k, v)
	}
	if secret.Data == nil {
		secret.Data = map[string][]byte{}
	}
	maps.Copy(secret.Data, p.setData)
	for _, k := range p.removeData {
		delete(secret.Data, k)
	}
	if p.generate != genNone {
		if p.keepPrevious {
			v, err := c.verifier(secret.Data)
			if err != nil {
				return fmt.Errorf("rotate the %s of Secret %s/%s: %w", c.name, secret.Namespace, secret.Name, err)
			}
			secret.Data[c.previous] = v
		}
		generated, err := c.generate()
		if err != nil {
			return err
		}
		maps.Copy(secret.Data, generated)
	}
	for k, v := range p.setAnnotations {
		metav1.SetMetaDataAnnotation(&secret.ObjectMeta, k, v)
	}
	for _, k := range p.removeAnnotations {
		delete(secret.Annotations, k)
	}
	return nil
}
