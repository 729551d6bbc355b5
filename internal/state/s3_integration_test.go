//go:build integration

package state

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/lastcall-dev/lastcall/internal/devcluster"
)

const (
	minioUser     = "lastcall"
	minioPassword = "lastcall-test-secret"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startMinio runs a MinIO server for t, creates a bucket and returns the
// s3:// URL of the bucket.
func startMinio(t *testing.T) string {
	t.Helper()
	// `make minio` builds it before the tests; a bare `go test` builds it
	// here on first use (about 10 min), with progress on stderr.
	bin, err := devcluster.EnsureMinio(context.Background(), devcluster.MinioOptions{})
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	endpoint := fmt.Sprintf("http://127.0.0.1:%d", port)
	cmd := exec.Command(bin, "server", "--quiet", "--address", fmt.Sprintf("127.0.0.1:%d", port),
		"--console-address", fmt.Sprintf("127.0.0.1:%d", freePort(t)), t.TempDir())
	cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+minioUser, "MINIO_ROOT_PASSWORD="+minioPassword,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("minio log:\n%s", logs.String())
		}
	})
	err = wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		resp, err := http.Get(endpoint + "/minio/health/live")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		t.Fatalf("MinIO did not become live: %v\n%s", err, logs.String())
	}
	client := s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(minioUser, minioPassword, ""),
	})
	if _, err := client.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String("lastcall-state")}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	// s3blob reads credentials the standard AWS way.
	t.Setenv("AWS_ACCESS_KEY_ID", minioUser)
	t.Setenv("AWS_SECRET_ACCESS_KEY", minioPassword)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	q := url.Values{"endpoint": {endpoint}, "region": {"us-east-1"}, "use_path_style": {"true"}, "disable_https": {"true"}}
	return "s3://lastcall-state?" + q.Encode()
}

func TestS3StoreRoundTripsAndAbortsCleanly(t *testing.T) {
	s, err := OpenStore(context.Background(), startMinio(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()

	// Large enough for a multipart upload (s3blob sends 5 MiB parts).
	payload := bytes.Repeat([]byte("0123456789abcdef"), 12<<20/16)
	prev, err := s.Put(ctx, PutOptions{Namespace: "ns", Key: "app/cache.tar", ContentType: "application/x-tar", Pod: "web-0", Created: time.Now(), SHA256: sum(payload)}, bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	obj, err := s.Open(ctx, "ns", "app/cache.tar", "")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(obj)
	obj.Close()
	if err != nil || !bytes.Equal(got, payload) || obj.Meta != prev {
		t.Fatalf("read back %d bytes, %v, meta %+v", len(got), err, obj.Meta)
	}

	// A wrong checksum and a body that fails halfway both leave nothing.
	if _, err := s.Put(ctx, PutOptions{Namespace: "ns", Key: "app/cache.tar", Created: time.Now(), SHA256: sum([]byte("x"))}, bytes.NewReader(payload)); !errors.Is(err, ErrChecksumMismatch) {
		t.Fatalf("checksum mismatch: %v", err)
	}
	broken := io.MultiReader(bytes.NewReader(payload), failingReader{})
	if _, err := s.Put(ctx, PutOptions{Namespace: "ns", Key: "app/cache.tar", Created: time.Now()}, broken); !errors.Is(err, ErrIncompleteBody) {
		t.Fatalf("broken body: %v", err)
	}
	items, err := s.List(ctx, "ns")
	if err != nil || len(items) != 1 || len(items[0].Versions) != 1 || items[0].Versions[0] != prev.Version {
		t.Fatalf("after the failed writes List = %+v, %v", items, err)
	}
	n := 0
	it := s.bucket.List(nil)
	for {
		if _, err := it.Next(ctx); err != nil {
			break
		}
		n++
	}
	if n != 1 {
		t.Fatalf("bucket holds %d objects, want 1", n)
	}

	if err := s.Delete(ctx, "ns", "app/cache.tar", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(ctx, "ns", "app/cache.tar", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after Delete: %v", err)
	}
}

func TestS3StoreServesTheHTTPAPI(t *testing.T) {
	s, err := OpenStore(context.Background(), startMinio(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	ts := newTestServer(t, s, Options{})
	url := ts.URL + "/v1/state/team-a/k"
	if r := do(t, http.MethodPut, url, adminToken, strings.NewReader("over s3"), nil); r.code != http.StatusCreated {
		t.Fatalf("PUT: %d %s", r.code, r.body)
	}
	if r := do(t, http.MethodGet, url, adminToken, nil, nil); r.code != http.StatusOK || string(r.body) != "over s3" {
		t.Fatalf("GET: %d %s", r.code, r.body)
	}
	if r := do(t, http.MethodPut, url, adminToken, "bad", map[string]string{HeaderSHA256: sum([]byte("good"))}); r.code != http.StatusBadRequest {
		t.Fatalf("PUT with a wrong checksum: %d %s", r.code, r.body)
	}
	if r := do(t, http.MethodGet, url, adminToken, nil, nil); string(r.body) != "over s3" {
		t.Fatalf("GET after the refused PUT: %s", r.body)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }
