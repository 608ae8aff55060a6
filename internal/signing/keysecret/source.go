// Package keysecret is the Kubernetes side of the signing keys: it keeps a
// signing.Keyring in step with the signing-key Secret (package signing holds the keys,
// their Secret format and rotation rules, and knows nothing of Kubernetes).
package keysecret

import (
	"context"
	"fmt"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/oauth-client-operator/oauth-client-operator/api/v1alpha1"
	"github.com/oauth-client-operator/oauth-client-operator/internal/signing"
)

// Source keeps a signing.Keyring in step with the signing-key Secret. At start it creates
// the Secret with a new key when it is missing (any replica may; on a conflict it reads
// the winner's), then reloads the keys whenever the Secret changes. It runs in every
// replica.
//
// Revoked keys (KeySet.Revoke) are never loaded: a version of the Secret that brings
// one back (a restored backup, a stale write) has it dropped, or is refused when it
// would sign with it; the keys in force stay until the leader revokes it again. A
// deleted Secret is restored from the keys in force, never with a revoked key.
type Source struct {
	// Key names the Secret.
	Key types.NamespacedName
	// Algorithm is the algorithm of a key created at first start.
	Algorithm signing.Algorithm
	// Client writes the Secret.
	Client client.Client
	// APIReader reads the Secret from the API server at start.
	APIReader client.Reader
	// Cache provides the Secret informer (label-selected by the manager).
	Cache cache.Cache
	// Keyring receives the keys.
	Keyring *signing.Keyring
	// Revocations remembers every revoked key seen by this process (shared with the
	// signing-key controller); nil remembers only what the Secret lists.
	Revocations *signing.Revocations
	// Log receives what happens to the keys (never key material).
	Log logr.Logger
	// Clock tells the time; the real clock when nil.
	Clock clock.PassiveClock
}

// NeedLeaderElection is false: every replica signs and publishes keys.
func (s *Source) NeedLeaderElection() bool { return false }

// Start ensures the Secret exists, loads it and watches it until ctx ends.
func (s *Source) Start(ctx context.Context) error {
	if s.Clock == nil {
		s.Clock = clock.RealClock{}
	}
	secret, err := s.ensure(ctx)
	if err != nil {
		return err
	}
	if err := s.load(secret); err != nil {
		return fmt.Errorf("load signing keys from Secret %s: %w", s.Key, err)
	}
	informer, err := s.Cache.GetInformer(ctx, &corev1.Secret{})
	if err != nil {
		return fmt.Errorf("watch signing-key Secret: %w", err)
	}
	reg, err := informer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.changed(obj) },
		UpdateFunc: func(_, obj any) { s.changed(obj) },
		DeleteFunc: func(obj any) { s.deleted(ctx, obj) },
	})
	if err != nil {
		return fmt.Errorf("watch signing-key Secret: %w", err)
	}
	<-ctx.Done()
	return informer.RemoveEventHandler(reg)
}

func (s *Source) isKeySecret(obj any) (*corev1.Secret, bool) {
	if tomb, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	secret, ok := obj.(*corev1.Secret)
	if !ok || secret.Namespace != s.Key.Namespace || secret.Name != s.Key.Name {
		return nil, false
	}
	return secret, true
}

func (s *Source) changed(obj any) {
	secret, ok := s.isKeySecret(obj)
	if !ok {
		return
	}
	if cur := s.Keyring.Load(); cur != nil && cur.Version == secret.ResourceVersion {
		return
	}
	if err := s.load(secret); err != nil {
		// Keep signing with the keys in force; a broken Secret must not stop the server.
		s.Log.Error(err, "ignoring invalid signing-key Secret; still using the previous keys", "secret", s.Key.String())
	}
}

// deleted restores a deleted (or unlabelled) Secret from the keys in force, so tokens
// already issued keep verifying.
func (s *Source) deleted(ctx context.Context, obj any) {
	if _, ok := s.isKeySecret(obj); !ok {
		return
	}
	cur := s.Keyring.Load()
	if cur == nil {
		return
	}
	keys, dropped, err := cur.Set.WithoutRevoked(s.Revocations)
	if err != nil {
		s.Log.Error(err, "signing-key Secret was deleted or lost its labels; not restoring revoked keys", "secret", s.Key.String())
		return
	}
	s.Log.Info("signing-key Secret was deleted or lost its labels; restoring it from the keys in force", "secret", s.Key.String(), "droppedRevoked", dropped)
	if err := s.write(ctx, keys); err != nil {
		s.Log.Error(err, "restore signing-key Secret", "secret", s.Key.String())
	}
}

func (s *Source) load(secret *corev1.Secret) error {
	ks, err := signing.Decode(secret.Data)
	if err != nil {
		return err
	}
	s.Revocations.Add(ks.Revoked...)
	ks, dropped, err := ks.WithoutRevoked(s.Revocations)
	if err != nil {
		return err
	}
	if len(dropped) > 0 {
		s.Log.Error(signing.ErrRevokedKey, "the signing-key Secret holds revoked keys; not loading them", "secret", s.Key.String(), "revoked", dropped)
	}
	l, err := s.Keyring.Store(ks, secret.ResourceVersion, s.Clock.Now())
	if err != nil {
		return err
	}
	s.Log.Info("loaded signing keys", "secret", s.Key.String(), "current", l.Signer.KeyID(), "algorithm", l.Signer.Algorithm(), "keys", len(ks.Keys))
	return nil
}

// ensure returns the Secret, creating it with a new key when missing.
func (s *Source) ensure(ctx context.Context) (*corev1.Secret, error) {
	secret := &corev1.Secret{}
	err := s.APIReader.Get(ctx, s.Key, secret)
	if err == nil {
		return secret, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("get signing-key Secret %s: %w", s.Key, err)
	}
	key, err := signing.GenerateKey(s.Algorithm, s.Clock.Now())
	if err != nil {
		return nil, err
	}
	ks := &signing.KeySet{CurrentID: key.ID, Keys: []*signing.Key{key}}
	if err := s.write(ctx, ks); err != nil {
		return nil, err
	}
	s.Log.Info("created signing-key Secret", "secret", s.Key.String(), "kid", key.ID, "algorithm", key.Algorithm)
	if err := s.APIReader.Get(ctx, s.Key, secret); err != nil {
		return nil, fmt.Errorf("get signing-key Secret %s: %w", s.Key, err)
	}
	return secret, nil
}

// write creates the Secret from ks; when another replica created it first, theirs wins.
func (s *Source) write(ctx context.Context, ks *signing.KeySet) error {
	data, err := ks.Encode()
	if err != nil {
		return err
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: s.Key.Namespace, Name: s.Key.Name,
			Labels: map[string]string{oauthv1alpha1.ManagedByLabel: oauthv1alpha1.ManagedByValue, oauthv1alpha1.SigningKeysLabel: "true"},
		},
		Type: corev1.SecretTypeOpaque,
		Data: data,
	}
	if err := s.Client.Create(ctx, secret); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create signing-key Secret %s: %w", s.Key, err)
	}
	return nil
}
