package mail

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/microcosm-cc/bluemonday"
	"golang.org/x/net/html"
)

// bodyPolicy keeps only the formatting the notification editor offers.
var bodyPolicy = func() *bluemonday.Policy {
	p := bluemonday.NewPolicy()
	p.AllowElements("b", "strong", "i", "em", "u", "s", "strike", "del", "p", "br", "ul", "ol", "li")
	p.AllowAttrs("href").OnElements("a")
	p.AllowURLSchemes("http", "https", "mailto")
	p.RequireParseableURLs(true)
	p.AllowRelativeURLs(false)
	return p
}()

// bluemonday writes an allowed link as exactly <a href="…"> (href is the
// only attribute allowed, and its value is escaped), so this finds them all.
var linkOpen = regexp.MustCompile(`<a href="([^"]*)">`)

// SanitizeBody cleans the sender's formatted text for a mail. It keeps b,
// strong, i, em, u, s, strike, del, p, br, ul, ol, li and links (a href with
// http, https or mailto only, given rel="noopener noreferrer"); all other
// elements and attributes (script, style, img, on… handlers, target, class,
// …) are removed.
func SanitizeBody(s string) string {
	out := bodyPolicy.Sanitize(s)
	return linkOpen.ReplaceAllString(out, `<a href="$1" rel="noopener noreferrer">`)
}

// BodyText returns the plain-text version of the sender's formatted text
// (sanitized first): paragraphs and line breaks become new lines, list items
// start with "- " (or "1. " in a numbered list) and links become
// "text (url)".
func BodyText(s string) string {
	doc, err := html.Parse(strings.NewReader("<body>" + SanitizeBody(s) + "</body>"))
	if err != nil {
		return ""
	}
	var body *html.Node
	var find func(*html.Node)
	find = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "body" && body == nil {
			body = n
			return
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			find(c)
		}
	}
	find(doc)
	if body == nil {
		return ""
	}
	w := &textWriter{}
	w.children(body, "")
	return w.String()
}

type textWriter struct {
	lines []string
	cur   strings.Builder
	space bool // a space is pending
}

func (w *textWriter) text(s string) {
	for _, r := range s {
		if r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\f' {
			w.space = true
			continue
		}
		if w.space && w.cur.Len() > 0 && !strings.HasSuffix(w.cur.String(), " ") {
			w.cur.WriteByte(' ')
		}
		w.space = false
		w.cur.WriteRune(r)
	}
}

func (w *textWriter) lit(s string) { // written as is, no space handling
	w.cur.WriteString(s)
	w.space = false
}

func (w *textWriter) newline() {
	w.lines = append(w.lines, strings.TrimRight(w.cur.String(), " "))
	w.cur.Reset()
	w.space = false
}

// block ends the current line, if any, and leaves one empty line.
func (w *textWriter) block() {
	if w.cur.Len() > 0 {
		w.newline()
	}
	if n := len(w.lines); n > 0 && w.lines[n-1] != "" {
		w.lines = append(w.lines, "")
	}
}

func (w *textWriter) endLine() {
	if w.cur.Len() > 0 {
		w.newline()
	}
}

func (w *textWriter) children(n *html.Node, indent string) {
	num := 0
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		switch c.Type {
		case html.TextNode:
			w.text(c.Data)
		case html.ElementNode:
			switch c.Data {
			case "br":
				w.newline()
			case "p":
				w.block()
				w.children(c, indent)
				w.block()
			case "ul", "ol":
				if indent == "" {
					w.block()
				} else {
					w.endLine()
				}
				w.children(c, indent+"  ")
				if indent == "" {
					w.block()
				}
			case "li":
				w.endLine()
				marker := "- "
				if n.Data == "ol" {
					num++
					marker = strconv.Itoa(num) + ". "
				}
				w.lit(indent[min(2, len(indent)):] + marker)
				w.children(c, indent)
				w.endLine()
			case "a":
				href := ""
				for _, a := range c.Attr {
					if a.Key == "href" {
						href = a.Val
					}
				}
				before := w.cur.Len()
				w.children(c, indent)
				label := strings.TrimSpace(w.cur.String()[min(before, w.cur.Len()):])
				shown := strings.TrimPrefix(href, "mailto:")
				if href != "" && label != shown && label != href {
					if label == "" {
						w.text(shown)
					} else {
						w.lit(" (" + shown + ")")
					}
				}
			default:
				w.children(c, indent)
			}
		}
	}
}

func (w *textWriter) String() string {
	w.endLine()
	lines := w.lines
	for len(lines) > 0 && lines[0] == "" {
		lines = lines[1:]
	}
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	// Collapse runs of empty lines.
	out := lines[:0:0]
	for i, l := range lines {
		if l == "" && i > 0 && lines[i-1] == "" {
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}
