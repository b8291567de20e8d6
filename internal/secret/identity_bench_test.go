package secret

import (
	"fmt"
	"testing"
)

// BenchmarkUnwrapIdentity measures one unlock, which is where the
// scrypt cost lands (wrapping costs the same but happens once per
// transfer). PasswordLogN was chosen from these numbers; see KDF.md.
//
//	go test -run '^$' -bench UnwrapIdentity -benchmem ./internal/secret/
func BenchmarkUnwrapIdentity(b *testing.B) {
	id, err := GenerateIdentity()
	if err != nil {
		b.Fatal(err)
	}
	for _, logN := range []int{LinkSecretLogN, 15, 16, 17} {
		b.Run(fmt.Sprintf("logN=%d", logN), func(b *testing.B) {
			wrapped, err := WrapIdentity(id, "correct horse battery", logN)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := UnwrapIdentity(wrapped, "correct horse battery", logN); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(b.Elapsed().Seconds()*1000/float64(b.N), "ms/op")
			// scrypt's working set is 128·r·N bytes with r = 8.
			b.ReportMetric(float64(int64(1024)<<logN)/(1<<20), "MiB-scrypt")
		})
	}
}
