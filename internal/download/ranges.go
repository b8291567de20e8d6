package download

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"

	"github.com/kluis-nl/kluis/internal/transfer"
)

// Downloads answer Range requests themselves instead of through
// http.ServeContent: for several ranges ServeContent copies the body in a
// goroutine of its own, where the abort that a read error of stored data
// must cause (a tampered segment, blobs purged under a slow reader) cannot
// be recovered and ends the whole process. Here every byte is written by
// the handler's goroutine. Conditional requests keep ServeContent's
// answers for a response without validators (no ETag, no Last-Modified),
// which is what downloads have.

const (
	// maxRangeParts bounds the parts of one multipart/byteranges answer;
	// a request for more gets the whole file (RFC 9110 section 14.2 lets a
	// server ignore Range, and every client must take a 200).
	maxRangeParts = 8
	// rangeGap: ranges closer than this are sent as one part (RFC 9110
	// section 14.6): a part's own header costs about as much.
	rangeGap = 80
	// maxRangeSpecs bounds the ranges read from one header before the
	// request is treated as one for the whole file.
	maxRangeSpecs = 100
)

var (
	errBadRange     = errors.New("invalid range")
	errUnsatisfying = errors.New("no range overlaps the file")
)

// parseRanges reads a Range header for a file of size bytes: nil for the
// whole file (no header, or one to ignore), else the ranges to send as
// sorted, disjoint spans with near ones joined. errBadRange is a header
// that does not parse; errUnsatisfying one whose ranges all lie past the
// end.
func parseRanges(h string, size int64) ([]transfer.Span, error) {
	if h == "" {
		return nil, nil
	}
	unit, set, ok := strings.Cut(h, "=")
	if !ok || textproto.TrimString(unit) != "bytes" {
		return nil, errBadRange
	}
	var spans []transfer.Span
	specs := 0
	for spec := range strings.SplitSeq(set, ",") {
		spec = textproto.TrimString(spec)
		if spec == "" {
			continue
		}
		if specs++; specs > maxRangeSpecs {
			return nil, nil
		}
		first, last, ok := strings.Cut(spec, "-")
		if !ok {
			return nil, errBadRange
		}
		first, last = textproto.TrimString(first), textproto.TrimString(last)
		if first == "" {
			// A suffix: the last n bytes.
			n, err := parseDigits(last)
			if err != nil {
				return nil, errBadRange
			}
			if n > 0 && size > 0 {
				spans = append(spans, transfer.Span{Start: size - min(n, size), End: size})
			}
			continue
		}
		start, err := parseDigits(first)
		if err != nil {
			return nil, errBadRange
		}
		end := size // exclusive
		if last != "" {
			l, err := parseDigits(last)
			if err != nil || l < start {
				return nil, errBadRange
			}
			if l < size {
				end = l + 1
			}
		}
		if start < size {
			spans = append(spans, transfer.Span{Start: start, End: end})
		}
	}
	if len(spans) == 0 {
		return nil, errUnsatisfying
	}
	slices.SortFunc(spans, func(a, b transfer.Span) int { return cmp.Compare(a.Start, b.Start) })
	joined := spans[:1]
	for _, s := range spans[1:] {
		if prev := &joined[len(joined)-1]; s.Start <= prev.End+rangeGap {
			prev.End = max(prev.End, s.End)
			continue
		}
		joined = append(joined, s)
	}
	if len(joined) > maxRangeParts {
		return nil, nil
	}
	return joined, nil
}

// parseDigits reads a non-empty run of ASCII digits.
func parseDigits(s string) (int64, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, errBadRange
	}
	return strconv.ParseInt(s, 10, 64)
}

// listHasStar reports whether an If-Match or If-None-Match list holds "*"
// before anything that is not an entity tag. Without a validator of its
// own a response matches no entity tag, so "*" is the only member that
// can match (RFC 9110 sections 13.1.1 and 13.1.2).
func listHasStar(list string) bool {
	rest := list
	for {
		rest = textproto.TrimString(rest)
		switch {
		case rest == "":
			return false
		case rest[0] == ',':
			rest = rest[1:]
		case rest[0] == '*':
			return true
		default:
			n := entityTagLen(rest)
			if n == 0 {
				return false
			}
			rest = rest[n:]
		}
	}
}

// entityTagLen returns the length of the entity-tag (RFC 9110 section
// 8.8.3: [W/] DQUOTE *etagc DQUOTE) at the start of s, or 0.
func entityTagLen(s string) int {
	i := 0
	if strings.HasPrefix(s, "W/") {
		i = 2
	}
	if i >= len(s) || s[i] != '"' {
		return 0
	}
	for j := i + 1; j < len(s); j++ {
		switch c := s[j]; {
		case c == '"':
			return j + 1
		case c == 0x21 || (c >= 0x23 && c <= 0x7e) || c >= 0x80:
		default:
			return 0
		}
	}
	return 0
}

// preconditions answers a conditional request that fails, as
// http.ServeContent does for a response without validators: If-Match
// without "*" fails (412); If-None-Match with "*" matches, so a GET or
// HEAD gets 304. If-Unmodified-Since and If-Modified-Since have no date to
// compare with and are ignored. It reports whether it answered.
func preconditions(w http.ResponseWriter, r *http.Request) bool {
	if im := r.Header.Get("If-Match"); im != "" && !listHasStar(im) {
		w.WriteHeader(http.StatusPreconditionFailed)
		return true
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" && listHasStar(inm) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			h := w.Header()
			h.Del("Content-Type")
			h.Del("Content-Length")
			w.WriteHeader(http.StatusNotModified)
		} else {
			w.WriteHeader(http.StatusPreconditionFailed)
		}
		return true
	}
	return false
}

// contentRange is the Content-Range value of a span of a file of size
// bytes.
func contentRange(s transfer.Span, size int64) string {
	return fmt.Sprintf("bytes %d-%d/%d", s.Start, s.End-1, size)
}

// partHeader is the header of one part of a multipart/byteranges body.
func partHeader(s transfer.Span, size int64) textproto.MIMEHeader {
	return textproto.MIMEHeader{
		"Content-Type":  {"application/octet-stream"},
		"Content-Range": {contentRange(s, size)},
	}
}

// multipartLength is the length of the multipart/byteranges body with the
// given boundary, so the answer carries a Content-Length and a client can
// tell an aborted answer from a complete one.
func multipartLength(spans []transfer.Span, size int64, boundary string) int64 {
	var c countWriter
	mw := multipart.NewWriter(&c)
	if err := mw.SetBoundary(boundary); err != nil {
		panic(err) // the boundary came from multipart.NewWriter
	}
	for _, s := range spans {
		mw.CreatePart(partHeader(s, size))
		c.n += s.Len()
	}
	mw.Close()
	return c.n
}

// countWriter counts the bytes that w took; with w nil it only counts.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	if c.w == nil {
		c.n += int64(len(p))
		return len(p), nil
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
