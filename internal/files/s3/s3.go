// Package s3 keeps the Batch API's files in an S3-compatible bucket
// (AWS S3, MinIO, OSS, COS, R2, …) through minio-go.
package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/tidegate/tidegate/internal/files"
)

// Config locates the bucket.
type Config struct {
	Endpoint  string // URL: https://s3.amazonaws.com, http://127.0.0.1:9000
	Region    string
	Bucket    string
	Prefix    string // prepended to every name, e.g. "tidegate/"
	AccessKey string
	SecretKey string
	// PathStyle addresses the bucket in the path (MinIO, most self-hosted
	// stores) rather than as a subdomain.
	PathStyle bool
}

// Store is a bucket holding files.
type Store struct {
	c      *minio.Client
	bucket string
	prefix string
}

// New connects (lazily: nothing is sent until the first call).
func New(cfg Config) (*Store, error) {
	u, err := url.Parse(cfg.Endpoint)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("files: s3 endpoint %q: want http(s)://host[:port]", cfg.Endpoint)
	}
	if cfg.Bucket == "" {
		return nil, errors.New("files: s3 bucket is required")
	}
	lookup := minio.BucketLookupDNS
	if cfg.PathStyle {
		lookup = minio.BucketLookupPath
	}
	c, err := minio.New(u.Host, &minio.Options{
		Creds:        credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:       u.Scheme == "https",
		Region:       cfg.Region,
		BucketLookup: lookup,
	})
	if err != nil {
		return nil, fmt.Errorf("files: s3: %w", err)
	}
	return &Store{c: c, bucket: cfg.Bucket, prefix: cfg.Prefix}, nil
}

// Put uploads a file; S3 makes an object visible only once whole.
func (s *Store) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	if err := files.CheckName(name); err != nil {
		return err
	}
	_, err := s.c.PutObject(ctx, s.bucket, s.prefix+name, r, size, minio.PutObjectOptions{ContentType: "application/jsonl"})
	if err != nil {
		return fmt.Errorf("files: s3 put %s: %w", name, err)
	}
	return nil
}

// Open reads a file. minio-go's object reads lazily, so a missing object
// is found by a Stat first.
func (s *Store) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := files.CheckName(name); err != nil {
		return nil, err
	}
	if _, err := s.c.StatObject(ctx, s.bucket, s.prefix+name, minio.StatObjectOptions{}); err != nil {
		if minio.ToErrorResponse(err).StatusCode == 404 {
			return nil, files.ErrNotFound
		}
		return nil, fmt.Errorf("files: s3 stat %s: %w", name, err)
	}
	o, err := s.c.GetObject(ctx, s.bucket, s.prefix+name, minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("files: s3 get %s: %w", name, err)
	}
	return o, nil
}

// Delete removes a file (S3 deletes of nothing succeed).
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := files.CheckName(name); err != nil {
		return err
	}
	if err := s.c.RemoveObject(ctx, s.bucket, s.prefix+name, minio.RemoveObjectOptions{}); err != nil {
		return fmt.Errorf("files: s3 delete %s: %w", name, err)
	}
	return nil
}
