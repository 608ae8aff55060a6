package operator

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// termCache is the cache of one leadership term's manager: the process's long-lived
// cache, shared, not owned. Starting it starts nothing (the shared cache already runs
// and outlives the term), and the event handlers the term's controllers register on
// the shared informers are removed again by release when the term ends, so a
// replica that leads many times does not accumulate handlers.
type termCache struct {
	cache.Cache

	mu       sync.Mutex
	handlers []registration
	released bool
}

type registration struct {
	informer cache.Informer
	handle   toolscache.ResourceEventHandlerRegistration
}

var errTermCacheIndex = errors.New("index fields on the process's cache before it starts, not on a leadership term's")

// Start waits for ctx: the shared cache is started (and stopped) by its own manager.
func (c *termCache) Start(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

// IndexField refuses: the shared informers are running, and a second term would add
// the same index again. Index on the process's manager (controllers.IndexFields).
func (c *termCache) IndexField(context.Context, client.Object, string, client.IndexerFunc) error {
	return errTermCacheIndex
}

// RemoveInformer does nothing: the informers serve the whole process (token server,
// signing keys), not only the term.
func (c *termCache) RemoveInformer(context.Context, client.Object) error { return nil }

// GetInformer returns the shared informer, tracking the handlers added to it.
func (c *termCache) GetInformer(ctx context.Context, obj client.Object, opts ...cache.InformerGetOption) (cache.Informer, error) {
	i, err := c.Cache.GetInformer(ctx, obj, opts...)
	if err != nil {
		return nil, err
	}
	return &termInformer{Informer: i, c: c}, nil
}

// GetInformerForKind returns the shared informer, tracking the handlers added to it.
func (c *termCache) GetInformerForKind(ctx context.Context, gvk schema.GroupVersionKind, opts ...cache.InformerGetOption) (cache.Informer, error) {
	i, err := c.Cache.GetInformerForKind(ctx, gvk, opts...)
	if err != nil {
		return nil, err
	}
	return &termInformer{Informer: i, c: c}, nil
}

// track records a handler; after release it removes it at once (a controller that
// starts late must not leave a handler behind).
func (c *termCache) track(i cache.Informer, h toolscache.ResourceEventHandlerRegistration, err error) (toolscache.ResourceEventHandlerRegistration, error) {
	if err != nil {
		return h, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.released {
		_ = i.RemoveEventHandler(h)
		return h, nil
	}
	c.handlers = append(c.handlers, registration{informer: i, handle: h})
	return h, nil
}

func (c *termCache) untrack(h toolscache.ResourceEventHandlerRegistration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for n, r := range c.handlers {
		if r.handle == h {
			c.handlers = append(c.handlers[:n], c.handlers[n+1:]...)
			return
		}
	}
}

// release removes every handler the term added; call it once the term's manager has
// stopped.
func (c *termCache) release() error {
	c.mu.Lock()
	handlers := c.handlers
	c.handlers, c.released = nil, true
	c.mu.Unlock()
	var errs []error
	for _, r := range handlers {
		if err := r.informer.RemoveEventHandler(r.handle); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove the event handlers of a leadership term: %w", err)
	}
	return nil
}

// termInformer is a shared informer whose new handlers belong to the term.
type termInformer struct {
	cache.Informer
	c *termCache
}

func (i *termInformer) AddEventHandler(h toolscache.ResourceEventHandler) (toolscache.ResourceEventHandlerRegistration, error) {
	r, err := i.Informer.AddEventHandler(h)
	return i.c.track(i.Informer, r, err)
}

func (i *termInformer) AddEventHandlerWithResyncPeriod(h toolscache.ResourceEventHandler, resync time.Duration) (toolscache.ResourceEventHandlerRegistration, error) {
	r, err := i.Informer.AddEventHandlerWithResyncPeriod(h, resync)
	return i.c.track(i.Informer, r, err)
}

func (i *termInformer) AddEventHandlerWithOptions(h toolscache.ResourceEventHandler, o toolscache.HandlerOptions) (toolscache.ResourceEventHandlerRegistration, error) {
	r, err := i.Informer.AddEventHandlerWithOptions(h, o)
	return i.c.track(i.Informer, r, err)
}

func (i *termInformer) RemoveEventHandler(h toolscache.ResourceEventHandlerRegistration) error {
	i.c.untrack(h)
	return i.Informer.RemoveEventHandler(h)
}
