// Package miniotest runs a real MinIO server for a test: the S3 backend of
// the state store, built by the project (devcluster.EnsureMinio) and served
// on loopback.
package miniotest

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/lastcall-dev/lastcall/internal/devcluster"
)

// Credentials of the test server.
const (
	User     = "lastcall"
	Password = "lastcall-test-secret"
	Bucket   = "lastcall-state"
)

// Server is one MinIO server with the Bucket.
type Server struct {
	// URL is the state store URL of the bucket (s3://...).
	URL      string
	endpoint string
	bin      string
	args     []string
	cmd      *exec.Cmd
	logs     bytes.Buffer
	t        testing.TB
}

func freePort(t testing.TB, host string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Start runs MinIO for t (stopped at its end), creates the bucket and sets
// the AWS environment the store (and processes started by the test) read
// credentials from.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartOn(t, "127.0.0.1")
}

// StartOn is Start with MinIO listening on host: the real node's tests use
// the node IP, which pods reach (inside the test's network namespace).
func StartOn(t testing.TB, host string) *Server {
	t.Helper()
	// `make minio` builds it before the tests; a bare `go test` builds it
	// here on first use (about 10 min), with progress on stderr.
	bin, err := devcluster.EnsureMinio(context.Background(), devcluster.MinioOptions{})
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t, host)
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	s := &Server{t: t, bin: bin, endpoint: "http://" + addr,
		args: []string{"server", "--quiet", "--address", addr,
			"--console-address", net.JoinHostPort(host, strconv.Itoa(freePort(t, host))), t.TempDir()}}
	s.Resume()
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("minio log:\n%s", s.logs.String())
		}
	})
	client := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(s.endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(User, Password, "")})
	if _, err := client.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(Bucket)}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	// s3blob reads credentials the standard AWS way.
	t.Setenv("AWS_ACCESS_KEY_ID", User)
	t.Setenv("AWS_SECRET_ACCESS_KEY", Password)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	q := url.Values{"endpoint": {s.endpoint}, "region": {"us-east-1"}, "use_path_style": {"true"}, "disable_https": {"true"}}
	s.URL = "s3://" + Bucket + "?" + q.Encode()
	return s
}

// Stop kills the server (as an outage would); its data stays for Resume.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Resume starts the server again on the same address and data, and waits
// until it is live.
func (s *Server) Resume() {
	s.t.Helper()
	cmd := exec.Command(s.bin, s.args...)
	cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+User, "MINIO_ROOT_PASSWORD="+Password, "MINIO_BROWSER=off", "MINIO_UPDATE=off")
	cmd.Stdout, cmd.Stderr = &s.logs, &s.logs
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.cmd = cmd
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		resp, err := http.Get(s.endpoint + "/minio/health/live")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		s.t.Fatalf("MinIO did not become live: %v\n%s", err, s.logs.String())
	}
}
