package keys

import (
	"context"
	"errors"
	"sync"
)

// Cache is a Finder that remembers keys, found or not, between changes to
// the key table. Each lookup still reads the store's key epoch, one integer
// bumped in the same transaction as every key change, so a key revoked or
// created anywhere (admin API, CLI, another replica) is seen on the very next
// request; what the cache saves is the join and the row decoding.
type Cache struct {
	src EpochFinder

	mu     sync.Mutex
	epoch  int64
	byHash map[string]*Key // nil value: no such key
}

// cacheLimit bounds the memory a flood of made-up keys can take.
const cacheLimit = 10_000

// NewCache wraps a store.
func NewCache(src EpochFinder) *Cache {
	return &Cache{src: src, byHash: map[string]*Key{}}
}

// KeyByHash returns a copy of the key, from memory while the epoch holds.
func (c *Cache) KeyByHash(ctx context.Context, hash string) (*Key, error) {
	epoch, err := c.src.KeyEpoch(ctx)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if epoch != c.epoch {
		c.epoch, c.byHash = epoch, map[string]*Key{}
	}
	k, ok := c.byHash[hash]
	c.mu.Unlock()
	if ok {
		if k == nil {
			return nil, ErrNotFound
		}
		cp := *k
		return &cp, nil
	}

	k, err = c.src.KeyByHash(ctx, hash)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	c.mu.Lock()
	// Stored under the epoch read before the lookup: a change in between
	// bumps the epoch past it and the next request clears this entry.
	if epoch == c.epoch && len(c.byHash) < cacheLimit {
		c.byHash[hash] = k
	}
	c.mu.Unlock()
	if k == nil {
		return nil, ErrNotFound
	}
	cp := *k
	return &cp, nil
}
