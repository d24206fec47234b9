package s3

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

func TestWriteSettings(t *testing.T) {
	for _, c := range []struct {
		name  string
		cfg   Config
		sse   types.ServerSideEncryption
		kms   string // "" for nil
		class types.StorageClass
	}{
		{"bucket defaults", Config{}, "", "", ""},
		{"AES256", Config{SSE: "AES256"}, types.ServerSideEncryptionAes256, "", ""},
		{"kms with key and class", Config{SSE: "aws:kms", SSEKMSKeyID: "alias/x", StorageClass: "STANDARD_IA"}, types.ServerSideEncryptionAwsKms, "alias/x", types.StorageClassStandardIa},
	} {
		sse, kms, class := c.cfg.writeSettings()
		got := ""
		if kms != nil {
			got = *kms
			if got == "" {
				t.Errorf("%s: empty KMS key id sent instead of none", c.name)
			}
		}
		if sse != c.sse || got != c.kms || class != c.class {
			t.Errorf("%s: got %q, %q, %q; want %q, %q, %q", c.name, sse, got, class, c.sse, c.kms, c.class)
		}
	}
}
