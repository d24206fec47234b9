// Package s3 is the Amazon S3 (and S3-compatible) backend, built on
// aws-sdk-go-v2. Credentials come from the standard AWS chain (environment,
// shared config and credentials files, SSO, container and instance roles);
// they are never taken from the URL. Puts stream through a multipart upload
// with PartSize × Concurrency bytes of buffers.
package s3

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"

	"github.com/gosst/gosst/storage/backend"
	"github.com/gosst/gosst/storage/internal/multipart"
	"github.com/gosst/gosst/storage/internal/s3opt"
	"github.com/gosst/gosst/storage/retry"
)

// Defaults: 16 MiB × 4 = 64 MiB of part buffers per Put; 160 GiB objects at
// most (10,000 parts) — raise PartSize for larger streams.
const (
	DefaultPartSize     = s3opt.DefaultPartSize
	DefaultConcurrency  = s3opt.DefaultConcurrency
	DefaultMaxAttempts  = s3opt.DefaultMaxAttempts
	DefaultListPageSize = s3opt.DefaultListPageSize
)

// Config of an S3 backend. The URL form is
// s3://bucket/prefix?endpoint=&path-style=&sse=&sse-kms-key-id=&storage-class=
// plus the parameters shared with minio:// (region, ca, part-size,
// concurrency, max-attempts, list-page-size, single-put-max; see s3opt).
type Config struct {
	Bucket       string
	Prefix       string // keys are stored as Prefix/key; "" for none
	Endpoint     string // "" for AWS (or $AWS_ENDPOINT_URL_S3)
	PathStyle    bool   // needed by most S3-compatible servers
	SSE          string // "", "AES256" or "aws:kms"
	SSEKMSKeyID  string // with SSE=aws:kms; "" for the bucket's default key
	StorageClass string // e.g. STANDARD_IA; "" for the bucket default
	// Options are the knobs shared with the minio backend. Region "" is
	// the AWS chain's region (us-east-1 if none); CAFile adds to the
	// system roots (or $AWS_CA_BUNDLE); MaxAttempts counts the attempts
	// per request of a streamed upload, the SDK's own retryer being off.
	s3opt.Options
	// Retry paces and logs the retries of the requests of a streamed
	// upload (storage.Open fills it; MaxAttempts is taken from above). A nil
	// Logger logs to slog.Default(): retries are never silent.
	Retry retry.Config
}

// ParseURL reads a Config from an s3:// URL.
func ParseURL(u *url.URL) (Config, error) {
	c := Config{
		Bucket:  u.Host,
		Prefix:  strings.Trim(u.Path, "/"),
		Options: s3opt.Defaults(),
	}
	if u.User != nil {
		return c, errors.New("s3 URL: credentials in the URL are not accepted; use the AWS credential chain (environment, ~/.aws, instance role)")
	}
	err := s3opt.Parse("s3", u.Query(), &c.Options, func(k, v string) (bool, error) {
		var err error
		switch k {
		case "endpoint":
			c.Endpoint = v
		case "path-style":
			c.PathStyle, err = strconv.ParseBool(v)
		case "sse":
			c.SSE = v
		case "sse-kms-key-id":
			c.SSEKMSKeyID = v
		case "storage-class":
			c.StorageClass = v
		default:
			return false, nil
		}
		return true, err
	})
	return c, err
}

// Backend is an S3 bucket (and prefix).
type Backend struct {
	cfg       Config
	client    *s3.Client
	transport atomic.Pointer[http.Transport]
	mp        multipart.Config
	retry     retry.Config
}

var _ backend.Backend = (*Backend)(nil)

// New builds the client exactly as production uses it: config.LoadDefaultConfig.
func New(ctx context.Context, c Config) (*Backend, error) {
	if c.Bucket == "" {
		return nil, errors.New("s3: no bucket in URL (s3://bucket/prefix)")
	}
	var mp multipart.Config
	var err error
	if c.Options, mp, err = c.Options.Resolve("s3"); err != nil {
		return nil, err
	}
	switch c.SSE {
	case "", string(types.ServerSideEncryptionAes256), string(types.ServerSideEncryptionAwsKms):
	default:
		return nil, fmt.Errorf("s3: sse=%q: want AES256 or aws:kms", c.SSE)
	}
	if c.SSEKMSKeyID != "" && c.SSE != string(types.ServerSideEncryptionAwsKms) {
		return nil, errors.New("s3: sse-kms-key-id needs sse=aws:kms")
	}
	rc := c.Retry.ForRequests(c.MaxAttempts)
	b := &Backend{cfg: c, mp: mp, retry: rc}
	var roots *x509.CertPool
	if c.CAFile != "" {
		if roots, err = s3opt.RootCAs("s3", c.CAFile); err != nil {
			return nil, err
		}
	}
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.MaxIdleConnsPerHost = c.Concurrency + 4
		tr.ResponseHeaderTimeout = 5 * time.Minute
		if roots != nil {
			s3opt.TrustRoots(tr, roots)
		}
		b.transport.Store(tr)
	})
	opts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(httpClient),
		// One attempt per SDK call: retries are ours (the retry decorator
		// for whole operations, Retry for the requests of a streamed
		// upload), so each is logged and they never multiply.
		config.WithRetryer(func() aws.Retryer { return aws.NopRetryer{} }),
	}
	if c.Region != "" {
		opts = append(opts, config.WithRegion(c.Region))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3: load AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = "us-east-1"
	}
	b.client = s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if c.Endpoint != "" {
			o.BaseEndpoint = aws.String(c.Endpoint)
		}
		o.UsePathStyle = c.PathStyle
		// Ranged reads of multipart objects cannot be checked against the
		// object checksum; the SDK would warn on every one of them.
		o.DisableLogOutputChecksumValidationSkipped = true
		o.Logger = logging.Nop{}
	})
	return b, nil
}

// Client is the underlying SDK client (for tests and benchmarks).
func (b *Backend) Client() *s3.Client { return b.client }

// Bucket is the bucket name.
func (b *Backend) Bucket() string { return b.cfg.Bucket }

// ObjectKey is the full object key for key.
func (b *Backend) ObjectKey(key string) string { return s3opt.ObjectKey(b.cfg.Prefix, key) }

func (b *Backend) String() string { return "s3://" + b.cfg.Bucket + "/" + b.cfg.Prefix }

// mapErr turns SDK errors into backend errors with an operator-facing
// message, and classifies them for the retry decorator.
func (b *Backend) mapErr(op, key string, err error) error {
	if err == nil {
		return nil
	}
	where := fmt.Sprintf("s3 %s s3://%s/%s", op, b.cfg.Bucket, b.ObjectKey(key))
	if key == "" {
		where = fmt.Sprintf("s3 %s s3://%s/%s", op, b.cfg.Bucket, b.cfg.Prefix)
	}
	var (
		nsk    *types.NoSuchKey
		nf     *types.NotFound
		api    smithy.APIError
		status int
	)
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	code := ""
	if errors.As(err, &api) {
		code = api.ErrorCode()
	}
	if errors.As(err, &nsk) || errors.As(err, &nf) {
		return fmt.Errorf("%s: %w", where, backend.ErrNotExist)
	}
	if mapped := s3opt.MapError(where, b.cfg.Bucket, "AWS credentials", s3opt.Answer{Status: status, Code: code}, err); mapped != nil {
		return mapped
	}
	return fmt.Errorf("%s: %w", where, err)
}

// Put implements backend.Backend.
func (b *Backend) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	return multipart.Put(ctx, target{b, key}, key, r, size, b.mp, b.retry.Do)
}

type target struct {
	b   *Backend
	key string
}

func (t target) PutSingle(ctx context.Context, body []byte) error {
	return t.PutSection(ctx, io.NewSectionReader(bytes.NewReader(body), 0, int64(len(body))))
}

func (t target) PutSection(ctx context.Context, body *io.SectionReader) error {
	in := &s3.PutObjectInput{
		Bucket:        &t.b.cfg.Bucket,
		Key:           aws.String(t.b.ObjectKey(t.key)),
		Body:          body,
		ContentLength: aws.Int64(body.Size()),
	}
	in.ServerSideEncryption, in.SSEKMSKeyId, in.StorageClass = t.b.cfg.writeSettings()
	_, err := t.b.client.PutObject(ctx, in)
	return t.b.mapErr("PutObject", t.key, err)
}

// writeSettings are the server-side encryption and storage class every
// object write sends (single PUT or multipart create): zero values, which
// the SDK omits, for what the URL does not set.
func (c *Config) writeSettings() (types.ServerSideEncryption, *string, types.StorageClass) {
	var kms *string
	if c.SSEKMSKeyID != "" {
		kms = aws.String(c.SSEKMSKeyID)
	}
	return types.ServerSideEncryption(c.SSE), kms, types.StorageClass(c.StorageClass)
}

func (t target) Create(ctx context.Context) (string, error) {
	in := &s3.CreateMultipartUploadInput{
		Bucket:            &t.b.cfg.Bucket,
		Key:               aws.String(t.b.ObjectKey(t.key)),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
	}
	in.ServerSideEncryption, in.SSEKMSKeyId, in.StorageClass = t.b.cfg.writeSettings()
	out, err := t.b.client.CreateMultipartUpload(ctx, in)
	if err != nil {
		return "", t.b.mapErr("CreateMultipartUpload", t.key, err)
	}
	return aws.ToString(out.UploadId), nil
}

func (t target) UploadPart(ctx context.Context, id string, n int32, body []byte) (multipart.Part, error) {
	out, err := t.b.client.UploadPart(ctx, &s3.UploadPartInput{
		Bucket:            &t.b.cfg.Bucket,
		Key:               aws.String(t.b.ObjectKey(t.key)),
		UploadId:          &id,
		PartNumber:        aws.Int32(n),
		Body:              bytes.NewReader(body),
		ContentLength:     aws.Int64(int64(len(body))),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
	})
	if err != nil {
		return multipart.Part{}, t.b.mapErr("UploadPart", t.key, err)
	}
	return multipart.Part{Number: n, ETag: aws.ToString(out.ETag), Checksum: aws.ToString(out.ChecksumCRC32)}, nil
}

func (t target) Complete(ctx context.Context, id string, parts []multipart.Part) error {
	cp := make([]types.CompletedPart, len(parts))
	for i, p := range parts {
		cp[i] = types.CompletedPart{PartNumber: aws.Int32(p.Number), ETag: aws.String(p.ETag)}
		if p.Checksum != "" {
			cp[i].ChecksumCRC32 = aws.String(p.Checksum)
		}
	}
	_, err := t.b.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          &t.b.cfg.Bucket,
		Key:             aws.String(t.b.ObjectKey(t.key)),
		UploadId:        &id,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: cp},
	})
	return t.b.mapErr("CompleteMultipartUpload", t.key, err)
}

func (t target) Abort(ctx context.Context, id string) error {
	_, err := t.b.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket:   &t.b.cfg.Bucket,
		Key:      aws.String(t.b.ObjectKey(t.key)),
		UploadId: &id,
	})
	return t.b.mapErr("AbortMultipartUpload", t.key, err)
}

// Get implements backend.Backend.
func (b *Backend) Get(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	if err := backend.ValidateKey(key); err != nil {
		return nil, err
	}
	if err := backend.ValidateRange(off, length); err != nil {
		return nil, err
	}
	in := &s3.GetObjectInput{Bucket: &b.cfg.Bucket, Key: aws.String(b.ObjectKey(key))}
	switch {
	case off == 0 && length < 0:
	case length < 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", off))
	default:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", off, off+length-1))
	}
	out, err := b.client.GetObject(ctx, in)
	if err != nil {
		err = b.mapErr("GetObject", key, err)
		if off == 0 && errors.Is(err, backend.ErrInvalidRange) {
			// Only an empty object refuses a range starting at 0.
			return b.Get(ctx, key, 0, -1)
		}
		return nil, err
	}
	return out.Body, nil
}

// Stat implements backend.Backend.
func (b *Backend) Stat(ctx context.Context, key string) (backend.ObjectInfo, error) {
	if err := backend.ValidateKey(key); err != nil {
		return backend.ObjectInfo{}, err
	}
	out, err := b.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b.cfg.Bucket, Key: aws.String(b.ObjectKey(key))})
	if err != nil {
		return backend.ObjectInfo{}, b.mapErr("HeadObject", key, err)
	}
	return backend.ObjectInfo{Key: key, Size: aws.ToInt64(out.ContentLength), ModTime: aws.ToTime(out.LastModified)}, nil
}

// List implements backend.Backend.
func (b *Backend) List(ctx context.Context, prefix string, fn func(backend.ObjectInfo) error) error {
	full, strip := s3opt.ObjectKey(b.cfg.Prefix, prefix), s3opt.ObjectKey(b.cfg.Prefix, "")
	p := s3.NewListObjectsV2Paginator(b.client, &s3.ListObjectsV2Input{
		Bucket:  &b.cfg.Bucket,
		Prefix:  aws.String(full),
		MaxKeys: aws.Int32(int32(b.cfg.ListPageSize)),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return b.mapErr("ListObjectsV2", prefix, err)
		}
		for _, o := range page.Contents {
			k := strings.TrimPrefix(aws.ToString(o.Key), strip)
			if k == "" || strings.HasSuffix(k, "/") {
				continue // directory marker
			}
			if err := fn(backend.ObjectInfo{Key: k, Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified)}); err != nil {
				return err
			}
		}
	}
	return nil
}

// Delete implements backend.Backend.
func (b *Backend) Delete(ctx context.Context, key string) error {
	if err := backend.ValidateKey(key); err != nil {
		return err
	}
	_, err := b.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &b.cfg.Bucket, Key: aws.String(b.ObjectKey(key))})
	err = b.mapErr("DeleteObject", key, err)
	if errors.Is(err, backend.ErrNotExist) {
		return nil
	}
	return err
}

// Close implements backend.Backend.
func (b *Backend) Close() error {
	if tr := b.transport.Load(); tr != nil {
		tr.CloseIdleConnections()
	}
	return nil
}
