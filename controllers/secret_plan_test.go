package controllers

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/internal/signing"
)

// These tests decide plans from objects built in memory: no API server, no client.

var (
	planNow = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	// goodSecret is a client secret as long as a generated one.
	goodSecret = strings.Repeat("s", minClientSecretLen)
)

func at(d time.Duration) string { return oauthv1alpha1.FormatRotationTime(planNow.Add(d)) }

func planClient(mutate ...func(*oauthv1alpha1.OAuthClient)) *oauthv1alpha1.OAuthClient {
	oc := &oauthv1alpha1.OAuthClient{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "erp", UID: "uid-erp"},
		Spec:       oauthv1alpha1.OAuthClientSpec{Audiences: []string{"back-office"}},
	}
	for _, m := range mutate {
		m(oc)
	}
	return oc
}

func withInterval(d time.Duration) func(*oauthv1alpha1.OAuthClient) {
	return func(oc *oauthv1alpha1.OAuthClient) {
		if oc.Spec.SecretRotation == nil {
			oc.Spec.SecretRotation = &oauthv1alpha1.SecretRotation{}
		}
		oc.Spec.SecretRotation.Interval = &metav1.Duration{Duration: d}
	}
}

func withGrace(d time.Duration) func(*oauthv1alpha1.OAuthClient) {
	return func(oc *oauthv1alpha1.OAuthClient) {
		if oc.Spec.SecretRotation == nil {
			oc.Spec.SecretRotation = &oauthv1alpha1.SecretRotation{}
		}
		oc.Spec.SecretRotation.GracePeriod = &metav1.Duration{Duration: d}
	}
}

func withTrigger(v string) func(*oauthv1alpha1.OAuthClient) {
	return func(oc *oauthv1alpha1.OAuthClient) {
		metav1.SetMetaDataAnnotation(&oc.ObjectMeta, oauthv1alpha1.RotateSecretAnnotation, v)
	}
}

func withMethod(m oauthv1alpha1.AuthenticationMethod) func(*oauthv1alpha1.OAuthClient) {
	return func(oc *oauthv1alpha1.OAuthClient) {
		oc.Spec.Authentication = &oauthv1alpha1.ClientAuthentication{Method: m}
		if m == oauthv1alpha1.AuthServiceAccountToken {
			oc.Spec.Authentication.ServiceAccountName = "erp"
		}
	}
}

func planManaged(oc *oauthv1alpha1.OAuthClient) map[string][]byte {
	return map[string][]byte{
		oauthv1alpha1.SecretKeyClientID: []byte(oc.ClientID()),
		oauthv1alpha1.SecretKeyTokenURL: []byte("https://oauth.test/oauth2-token"),
		oauthv1alpha1.SecretKeyIssuer:   []byte("https://oauth.test"),
	}
}

// storedSecret is the Secret of a client as the operator last wrote it, with data and
// annotations added or replaced.
func storedSecret(oc *oauthv1alpha1.OAuthClient, data map[string]string, annotations map[string]string) *corev1.Secret {
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: oc.Namespace, Name: oc.EffectiveSecretName(), Labels: secretLabels(oc), Annotations: annotations},
		Data:       planManaged(oc),
	}
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
	return s
}

func state(oc *oauthv1alpha1.OAuthClient, secret *corev1.Secret) secretState {
	return secretState{
		client: oc, secret: secret, cred: credentialFor(oc, signing.ES256), managed: planManaged(oc),
		now: planNow, minRequestInterval: time.Minute,
	}
}

func eventReasons(p secretPlan) []string {
	var out []string
	for _, e := range p.events {
		out = append(out, e.reason)
	}
	return out
}

// want is what a test expects of a plan; unset fields must be empty in the plan.
type want struct {
	create            bool
	generate          generation
	rotation          string
	keepPrevious      bool
	expired, removed  bool
	setLabels         []string
	setData           []string
	removeData        []string
	setAnnotations    map[string]string
	removeAnnotations []string
	deferredUntil     time.Time
	events            []string
	requeue           time.Duration
}

func checkPlan(t *testing.T, p secretPlan, w want) {
	t.Helper()
	keys := func(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }
	sorted := func(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }
	if p.create != w.create || p.generate != w.generate || p.rotation != w.rotation || p.keepPrevious != w.keepPrevious ||
		p.expired != w.expired || p.removed != w.removed {
		t.Errorf("create %v generate %q rotation %q keepPrevious %v expired %v removed %v; want %v %q %q %v %v %v",
			p.create, p.generate, p.rotation, p.keepPrevious, p.expired, p.removed,
			w.create, w.generate, w.rotation, w.keepPrevious, w.expired, w.removed)
	}
	if got := keys(p.setLabels); !slices.Equal(got, sorted(w.setLabels)) {
		t.Errorf("setLabels %v, want %v", got, sorted(w.setLabels))
	}
	if got := slices.Sorted(maps.Keys(p.setData)); !slices.Equal(got, sorted(w.setData)) {
		t.Errorf("setData %v, want %v", got, sorted(w.setData))
	}
	if got := sorted(p.removeData); !slices.Equal(got, sorted(w.removeData)) {
		t.Errorf("removeData %v, want %v", got, sorted(w.removeData))
	}
	if !maps.Equal(p.setAnnotations, w.setAnnotations) && (len(p.setAnnotations) != 0 || len(w.setAnnotations) != 0) {
		t.Errorf("setAnnotations %v, want %v", p.setAnnotations, w.setAnnotations)
	}
	if got := sorted(p.removeAnnotations); !slices.Equal(got, sorted(w.removeAnnotations)) {
		t.Errorf("removeAnnotations %v, want %v", got, sorted(w.removeAnnotations))
	}
	if !p.deferredUntil.Equal(w.deferredUntil) {
		t.Errorf("deferredUntil %v, want %v", p.deferredUntil, w.deferredUntil)
	}
	if got := eventReasons(p); !slices.Equal(got, w.events) {
		t.Errorf("events %v, want %v", got, w.events)
	}
	if p.requeue != w.requeue {
		t.Errorf("requeue %s, want %s", p.requeue, w.requeue)
	}
	if wantEmpty := !w.create && w.generate == genNone && len(w.setLabels)+len(w.setData)+len(w.removeData)+len(w.setAnnotations)+len(w.removeAnnotations) == 0; p.empty() != wantEmpty {
		t.Errorf("empty() = %v, want %v", p.empty(), wantEmpty)
	}
}

const (
	aRotatedAt  = oauthv1alpha1.SecretRotatedAtAnnotation
	aExpires    = oauthv1alpha1.PreviousSecretExpiresAnnotation
	aTrigger    = oauthv1alpha1.RotationTriggerAnnotation
	aHandledAt  = oauthv1alpha1.RotationTriggerHandledAtAnnotation
	kSecret     = oauthv1alpha1.SecretKeyClientSecret
	kPrevSecret = oauthv1alpha1.SecretKeyPreviousClientSecret
	kPrivate    = oauthv1alpha1.SecretKeyPrivateKey
	kKeyID      = oauthv1alpha1.SecretKeyKeyID
	kPrevPublic = oauthv1alpha1.SecretKeyPreviousPublicKey
)

func TestPlanSecret(t *testing.T) {
	t.Parallel()
	key, err := signing.GenerateClientKey(signing.ES256)
	if err != nil {
		t.Fatal(err)
	}
	keyData := map[string]string{kPrivate: key.PrivateKeyPEM, kKeyID: key.KeyID}
	rotated := map[string]string{aRotatedAt: at(-time.Hour)}
	all := []string{"label " + oauthv1alpha1.ManagedByLabel, "label " + oauthv1alpha1.ClientLabel}
	managedKeys := []string{oauthv1alpha1.SecretKeyClientID, oauthv1alpha1.SecretKeyTokenURL, oauthv1alpha1.SecretKeyIssuer}
	labelKeys := []string{oauthv1alpha1.ManagedByLabel, oauthv1alpha1.ClientLabel}
	_ = all

	tests := []struct {
		name   string
		client *oauthv1alpha1.OAuthClient
		secret func(oc *oauthv1alpha1.OAuthClient) *corev1.Secret
		want   want
	}{
		{
			name:   "up to date: nothing",
			client: planClient(),
			secret: func(oc *oauthv1alpha1.OAuthClient) *corev1.Secret {
				return storedSecret(oc, map[string]string{kSecret: goodSecret}, rotated)
			},
			want: want{},
		},
		{
			name:   "create with a client secret",
			client: planClient(withInterval(2 * time.Hour)),
			want: want{create: true, generate: genCreate, setLabels: labelKeys, setData: managedKeys,
				setAnnotations: map[string]string{aRotatedAt: at(0)}, events: []string{EventSecretCreated}, requeue: 2*time.Hour + time.Second},
		},
		{
			name:   "create serves a rotation requested before",
			client: planClient(withTrigger("x")),
			want: want{create: true, generate: genCreate, setLabels: labelKeys, setData: managedKeys,
				setAnnotations: map[string]string{aRotatedAt: at(0), aTrigger: "x", aHandledAt: at(0)}, events: []string{EventSecretCreated}},
		},
		{
			name: "recreate a deleted Secret: a warning",
			client: planClient(func(oc *oauthv1alpha1.OAuthClient) {
				oc.Status.SecretName = oc.Name
			}),
			want: want{create: true, generate: genCreate, setLabels: labelKeys, setData: managedKeys,
				setAnnotations: map[string]string{aRotatedAt: at(0)}, events: []string{EventSecretRecreated}},
		},
		{
			name:   "create for a method without a credential: no generation, no rotation state",
			client: planClient(withMethod(oauthv1alpha1.AuthServiceAccountToken)),
			want:   want{create: true, setLabels: labelKeys, setData: managedKeys, events: []string{EventSecretCreated}},
		},
		{
			name:   "restore labels and managed keys changed by hand, keep the rest",
			client: planClient(),
			secret: func(oc *oauthv1alpha1.OAuthClient) *corev1.Secret {
				s := storedSecret(oc, map[string]string{kSecret: goodSecret, oauthv1alpha1.SecretKeyTokenURL: "https://evil.example", "extra": "x"}, rotated)
				delete(s.Labels, oauthv1alpha1.ManagedByLabel)
				delete(s.Data, oauthv1alpha1.SecretKeyIssuer)
				return s
			},
			want: want{setLabels: []string{oauthv1alpha1.ManagedByLabel}, setData: []string{oauthv1alpha1.SecretKeyTokenURL, oauthv1alpha1.SecretKeyIssuer},
				events: []string{EventSecretRepaired}},
		},
		{
			name:   "a short client secret is regenerated",
			client: planClient(withTrigger("old")),
			secret: func(oc *oauthv1alpha1.OAuthClient) *corev1.Secret {
				return storedSecret(oc, map[string]string{kSecret: "short"}, map[string]string{aRotatedAt: at(-time.Hour), aTrigger: "old"})
			},
			want: want{generate: genRegenerate, setAnnotations: map[string]string{aRotatedAt: at(0)}, events: []string{EventSecretRegenerated}},
		},
		{
			name:   "switch from PrivateKeyJWT to ClientSecret: the key goes, a secret comes",
			client: planClient(),
			secret: func(oc *oauthv1alpha1.OAuthClient) *corev1.Secret {
				return storedSecret(oc, keyData, rotated)
			},
			want: want{generate: genSwitch, removeData: []string{kPrivate, kKeyID}, setAnnotations: map[string]string{aRotatedAt: at(0)},
				events: []string{EventSecretCreated}},
		},
		{
			name:   "switch to ServiceAccountToken: every credential and the rotation state go",
			client: planClient(withMethod(oauthv1alpha1.AuthServiceAccountToken)),
			secret: func(oc *oauthv1alpha1.OAuthClient) *corev1.Secret {
				return storedSecret(oc, map[string]string{kSecret: goodSecret, kPrevSecret: goodSecret},
					map[string]string{aRotatedAt: at(-time.Hour), aExpires: at(time.Hour), aTrigger: "t", aHandledAt: at(-time.Hour), "other": "kept"})
			},
			want: want{removed: true, removeData: []string{kSecret, kPrevSecret}, removeAnnotations: []string{aRotatedAt, aExpires, aTrigger, aHandledAt},
				events: []string{EventSecretRemoved}},
		},
		{
			name:   "PrivateKeyJWT with its own keys: a planted secret goes",
			client: planClient(withMethod(oauthv1alpha1.AuthPrivateKeyJWT), func(oc *oauthv1alpha1.OAuthClient) { oc.Spec.Authentication.PublicKeys = []string{"pem"} }),
			secret: func(oc *oauthv1alpha1.OAuthClient) *corev1.Secret {
				return storedSecret(oc, map[string]string{kSecret: goodSecret}, nil)
			},
			want: want{removed: true, removeData: []string{kSecret}, events: []string{EventSecretRemoved}},
		},
		{
			name:   "interval passed: rotate, keep the previous secret for the grace period",
			client: planClient(withInterval(time.Hour), withGrace(10*time.Minute)),
			secret: func(oc *oauthv1alpha1.OAuthClient) *corev1.Secret {
				return storedSecret(oc, map[string]string{kSecret: goodSecret}, map[string]string{aRotatedAt: at(-61 * time.Minute)})
			},
			want: want{generate: genRotate, rotation: rotationByInterval, keepPrevious: true,
				setAnnotations: map[string]string{aRotatedAt: at(0), aExpires: at(10 * time.Minute)},
				events:         []string{EventSecretRotated}, requeue: 10*time.Minute + time.Second},
		},
		{
			name:   "interval not yet passed: look again when it has",
			client: planClient(withInterval(time.Hour)),
			secret: func(oc *oauthv1alpha1.OAuthClient) *corev1.Secret {
				return storedSecret(oc, map[string]string{kSecret: goodSecret}, map[string]string{aRotatedAt: at(-59 * time.Minute)})
			},
			want: want{requeue: time.Minute + time.Second},
		},
		{
			name:   "a new annotation value rotates; no grace period drops the previous one at once",
			client: planClient(withTrigger("b"), withGrace(0)),
			secret: func(oc *oauthv1alpha1.OAuthClient) *corev1.Secret {
				return storedSecret(oc, map[string]string{kSecret: goodSecret, kPrevSecret: goodSecret},
					map[string]string{aRotatedAt: at(-time.Hour), aExpires: at(time.Hour), aTrigger: "a", aHandledAt: at(-2 * time.Minute)})
			},
			want: want{generate: genRotate, rotation: rotationByAnnotation, removeData: []string{kPrevSecret}, removeAnnotations: []string{aExpires},
				setAnnotations: map[string]string{aRotatedAt: at(0), aTrigger: "b", aHandledAt: at(0)}, events: []string{EventSecretRotated}},
		},
		{
			name:   "the same annotation value again: nothing",
			client: planClient(withTrigger("a")),
			secret: func(oc *oauthv1alpha1.OAuthClient) *corev1.Secret {
				return storedSecret(oc, map[string]string{kSecret: goodSecret}, map[string]string{aRotatedAt: at(-time.Hour), aTrigger: "a", aHandledAt: at(-time.Second)})
			},
			want: want{},
		},
		{
			name:   "a new annotation value within the minimum interval waits, with an event and a requeue at the allowed time",
			client: planClient(withTrigger("c")),
			secret: func(oc *oauthv1alpha1.OAuthClient) *corev1.Secret {
				return storedSecret(oc, map[string]string{kSecret: goodSecret}, map[string]string{aRotatedAt: at(-20 * time.Second), aTrigger: "b", aHandledAt: at(-20 * time.Second)})
			},
			want: want{deferredUntil: planNow.Add(40 * time.Second), events: []string{EventSecretRotationDeferred}, requeue: 41 * time.Second},
		},
		{
			name:   "a new annotation value exactly at the minimum interval rotates",
			client: planClient(withTrigger("c")),
			secret: func(oc *oauthv1alpha1.OAuthClient) *corev1.Secret {
				return storedSecret(oc, map[string]string{kSecret: goodSecret}, map[string]string{aRotatedAt: at(-time.Minute), aTrigger: "b", aHandledAt: at(-time.Minute)})
			},
			want: want{generate: genRotate, rotation: rotationByAnnotation, keepPrevious: true,
				setAnnotations: map[string]string{aRotatedAt: at(0), aTrigger: "c", aHandledAt: at(0), aExpires: at(24 * time.Hour)},
				events:         []string{EventSecretRotated}, requeue: 24*time.Hour + time.Second},
		},
		{
			name:   "the minimum interval counts from the last requested rotation, not from another one",
			client: planClient(withTrigger("c"), withInterval(time.Hour), withGrace(0)),
			secret: func(oc *oauthv1alpha1.OAuthClient) *corev1.Secret {
				return storedSecret(oc, map[string]string{kSecret: goodSecret}, map[string]string{aRotatedAt: at(-10 * time.Second), aTrigger: "b", aHandledAt: at(-time.Hour)})
			},
			want: want{generate: genRotate, rotation: rotationByAnnotation,
				setAnnotations: map[string]string{aRotatedAt: at(0), aTrigger: "c", aHandledAt: at(0)},
				events:         []string{EventSecretRotated}, requeue: time.Hour + time.Second},
		},
		{
			name:   "a deferred request is served by an interval rotation that is due anyway",
			client: planClient(withTrigger("c"), withInterval(time.Hour), withGrace(0)),
			secret: func(oc *oauthv1alpha1.OAuthClient) *corev1.Secret {
				return storedSecret(oc, map[string]string{kSecret: goodSecret}, map[string]string{aRotatedAt: at(-time.Hour), aTrigger: "b", aHandledAt: at(-10 * time.Second)})
			},
			want: want{generate: genRotate, rotation: rotationByInterval,
				setAnnotations: map[string]string{aRotatedAt: at(0), aTrigger: "c", aHandledAt: at(0)},
				events:         []string{EventSecretRotated}, requeue: time.Hour + time.Second},
		},
		{
			name:   "a request time in the future limits nothing",
			client: planClient(withTrigger("c"), withGrace(0)),
			secret: func(oc *oauthv1alpha1.OAuthClient) *corev1.Secret {
				return storedSecret(oc, map[string]string{kSecret: goodSecret}, map[string]string{aRotatedAt: at(-time.Hour), aTrigger: "b", aHandledAt: at(365 * 24 * time.Hour)})
			},
			want: want{generate: genRotate, rotation: rotationByAnnotation,
				setAnnotations: map[string]string{aRotatedAt: at(0), aTrigger: "c", aHandledAt: at(0)}, events: []string{EventSecretRotated}},
		},
		{
			name:   "the previous secret's grace period is over: it goes",
			client: planClient(),
			secret: func(oc *oauthv1alpha1.OAuthClient) *corev1.Secret {
				return storedSecret(oc, map[string]string{kSecret: goodSecret, kPrevSecret: goodSecret}, map[string]string{aRotatedAt: at(-time.Hour), aExpires: at(0)})
			},
			want: want{expired: true, removeData: []string{kPrevSecret}, removeAnnotations: []string{aExpires}},
		},
		{
			name:   "a previous secret with an unreadable expiry goes",
			client: planClient(),
			secret: func(oc *oauthv1alpha1.OAuthClient) *corev1.Secret {
				return storedSecret(oc, map[string]string{kSecret: goodSecret, kPrevSecret: goodSecret}, map[string]string{aRotatedAt: at(-time.Hour), aExpires: "soon"})
			},
			want: want{expired: true, removeData: []string{kPrevSecret}, removeAnnotations: []string{aExpires}},
		},
		{
			name:   "a previous secret within its grace period stays until it ends",
			client: planClient(),
			secret: func(oc *oauthv1alpha1.OAuthClient) *corev1.Secret {
				return storedSecret(oc, map[string]string{kSecret: goodSecret, kPrevSecret: goodSecret}, map[string]string{aRotatedAt: at(-time.Hour), aExpires: at(time.Minute)})
			},
			want: want{requeue: time.Minute + time.Second},
		},
		{
			name:   "an expiry without a previous secret goes; a missing rotation time is set",
			client: planClient(),
			secret: func(oc *oauthv1alpha1.OAuthClient) *corev1.Secret {
				return storedSecret(oc, map[string]string{kSecret: goodSecret}, map[string]string{aExpires: at(time.Hour)})
			},
			want: want{removeAnnotations: []string{aExpires}, setAnnotations: map[string]string{aRotatedAt: at(0)}},
		},
		{
			name:   "a generated key pair rotates like a secret, keeping the previous public key",
			client: planClient(withMethod(oauthv1alpha1.AuthPrivateKeyJWT), withTrigger("k")),
			secret: func(oc *oauthv1alpha1.OAuthClient) *corev1.Secret {
				return storedSecret(oc, keyData, rotated)
			},
			want: want{generate: genRotate, rotation: rotationByAnnotation, keepPrevious: true,
				setAnnotations: map[string]string{aRotatedAt: at(0), aTrigger: "k", aHandledAt: at(0), aExpires: at(24 * time.Hour)},
				events:         []string{EventSecretRotated}, requeue: 24*time.Hour + time.Second},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var secret *corev1.Secret
			if tt.secret != nil {
				secret = tt.secret(tt.client)
			}
			before := secret.DeepCopy()
			p := planSecret(state(tt.client, secret))
			checkPlan(t, p, tt.want)
			if secret != nil && (!maps.EqualFunc(secret.Data, before.Data, slices.Equal) || !maps.Equal(secret.Annotations, before.Annotations)) {
				t.Error("planning changed the Secret it read")
			}
		})
	}
}

// Events say what happened in words that name the Secret and never hold a credential.
func TestPlanEventNotes(t *testing.T) {
	t.Parallel()
	oc := planClient(withTrigger("c"))
	p := planSecret(state(oc, storedSecret(oc, map[string]string{kSecret: goodSecret},
		map[string]string{aRotatedAt: at(-time.Second), aTrigger: "b", aHandledAt: at(-time.Second)})))
	if len(p.events) != 1 {
		t.Fatalf("events %v", p.events)
	}
	e := p.events[0]
	if e.eventType != corev1.EventTypeNormal || e.action != "Rotate" ||
		e.note != "the rotation oauth.operator.dev/rotate-secret requests waits until 2026-11-28T12:00:59Z: requested rotations of a client are at least 1m0s apart" {
		t.Errorf("deferral event %+v", e)
	}
	for _, ev := range planSecret(state(oc, storedSecret(oc, map[string]string{kSecret: "short-secret-value"}, nil))).events {
		if strings.Contains(ev.note, "short-secret-value") {
			t.Errorf("event note %q holds the stored secret", ev.note)
		}
	}
}

// Applying a plan makes exactly its changes: a rotation keeps what verifies the
// current credential as the previous one before it installs the new one.
func TestApplyPlan(t *testing.T) {
	t.Parallel()
	key, err := signing.GenerateClientKey(signing.ES256)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		client *oauthv1alpha1.OAuthClient
		data   map[string]string
		check  func(t *testing.T, before, after *corev1.Secret)
	}{
		{"client secret rotation", planClient(withTrigger("r")), map[string]string{kSecret: goodSecret, "extra": "x"},
			func(t *testing.T, before, after *corev1.Secret) {
				if string(after.Data[kPrevSecret]) != goodSecret || len(after.Data[kSecret]) < minClientSecretLen || string(after.Data[kSecret]) == goodSecret {
					t.Errorf("data after rotation: previous %q, current %q", after.Data[kPrevSecret], after.Data[kSecret])
				}
				if string(after.Data["extra"]) != "x" {
					t.Error("a key the operator does not manage was changed")
				}
				if after.Annotations[aTrigger] != "r" || after.Annotations[aExpires] != at(24*time.Hour) {
					t.Errorf("annotations %v", after.Annotations)
				}
			}},
		{"key pair rotation", planClient(withMethod(oauthv1alpha1.AuthPrivateKeyJWT), withTrigger("r")), map[string]string{kPrivate: key.PrivateKeyPEM, kKeyID: key.KeyID},
			func(t *testing.T, before, after *corev1.Secret) {
				prev, err := signing.ParsePublicKeyPEM(string(after.Data[kPrevPublic]))
				if err != nil {
					t.Fatalf("previous public key: %v", err)
				}
				if kid, _ := signing.Thumbprint(prev); kid != key.KeyID {
					t.Errorf("previous public key is %s, want the rotated key %s", kid, key.KeyID)
				}
				_, kid, err := signing.ParseClientPrivateKey(string(after.Data[kPrivate]))
				if err != nil || kid == key.KeyID || string(after.Data[kKeyID]) != kid {
					t.Errorf("new key %s (err %v), key_id %s", kid, err, after.Data[kKeyID])
				}
			}},
		{"restore", planClient(), map[string]string{kSecret: goodSecret, oauthv1alpha1.SecretKeyClientID: "other.client"},
			func(t *testing.T, before, after *corev1.Secret) {
				if string(after.Data[oauthv1alpha1.SecretKeyClientID]) != "shop.erp" || string(after.Data[kSecret]) != goodSecret {
					t.Errorf("data %v", after.Data)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			secret := storedSecret(tt.client, nil, map[string]string{aRotatedAt: at(-time.Hour)})
			for k, v := range tt.data {
				secret.Data[k] = []byte(v)
			}
			in := state(tt.client, secret)
			p := planSecret(in)
			after := secret.DeepCopy()
			if err := p.applyTo(after, in.cred); err != nil {
				t.Fatal(err)
			}
			tt.check(t, secret, after)
		})
	}
}
