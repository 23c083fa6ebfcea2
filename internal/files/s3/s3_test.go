package s3_test

import (
	"net/http/httptest"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/tidegate/tidegate/internal/files/filestest"
	"github.com/tidegate/tidegate/internal/files/s3"
)

// TestS3 runs the suite against gofakes3, a real S3 protocol server on loopback.
func TestS3(t *testing.T) {
	backend := s3mem.New()
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	defer srv.Close()
	if err := backend.CreateBucket("tidegate"); err != nil {
		t.Fatal(err)
	}
	st, err := s3.New(s3.Config{Endpoint: srv.URL, Region: "us-east-1", Bucket: "tidegate", Prefix: "files/",
		AccessKey: "test", SecretKey: "test", PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	filestest.Run(t, st)
}
