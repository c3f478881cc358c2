package v2

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/wxflow/wxflow/workers/wechat"
)

// MaxXMLBytes bounds any v2 document wxflow parses: WeChat's largest
// (notifications with coupon details) stay far below it.
const MaxXMLBytes = 64 << 10

// ParseXML reads a flat v2 document (<xml> or <root>, one child per field,
// text or CDATA) into a map of every field. It refuses DOCTYPE and entity
// declarations (WeChat Pay's XXE security notice for merchants parsing v2
// notifications), nested elements, oversized and non-UTF-8 bodies; errors wrap
// [wechat.ErrMalformed].
func ParseXML(body []byte) (map[string]string, error) {
	if len(body) > MaxXMLBytes {
		return nil, fmt.Errorf("%w: body of %d bytes exceeds %d", wechat.ErrMalformed, len(body), MaxXMLBytes)
	}
	if !utf8.Valid(body) {
		return nil, fmt.Errorf("%w: body is not UTF-8", wechat.ErrMalformed)
	}
	dec := xml.NewDecoder(bytes.NewReader(body))
	dec.Strict = true
	dec.Entity = nil
	params := map[string]string{}
	depth := 0
	var field string
	var text strings.Builder
	rootSeen := false
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %w", wechat.ErrMalformed, err)
		}
		switch t := tok.(type) {
		case xml.Directive:
			return nil, fmt.Errorf("%w: DOCTYPE or other directive refused", wechat.ErrMalformed)
		case xml.ProcInst:
			if t.Target != "xml" {
				return nil, fmt.Errorf("%w: processing instruction %q refused", wechat.ErrMalformed, t.Target)
			}
		case xml.StartElement:
			depth++
			switch depth {
			case 1:
				if rootSeen {
					return nil, fmt.Errorf("%w: more than one root element", wechat.ErrMalformed)
				}
				rootSeen = true
			case 2:
				field = t.Name.Local
				text.Reset()
			default:
				return nil, fmt.Errorf("%w: nested element <%s> in <%s>", wechat.ErrMalformed, t.Name.Local, field)
			}
		case xml.EndElement:
			if depth == 2 {
				if _, dup := params[field]; dup {
					return nil, fmt.Errorf("%w: field %q repeated", wechat.ErrMalformed, field)
				}
				params[field] = text.String()
			}
			depth--
		case xml.CharData:
			if depth == 2 {
				text.Write(t)
			} else if len(bytes.TrimSpace(t)) > 0 {
				return nil, fmt.Errorf("%w: text outside a field", wechat.ErrMalformed)
			}
		}
	}
	if !rootSeen {
		return nil, fmt.Errorf("%w: no root element", wechat.ErrMalformed)
	}
	return params, nil
}

// EncodeXML writes params as a v2 <xml> document, fields in name order,
// values in CDATA.
func EncodeXML(params map[string]string) []byte { return EncodeXMLRoot("xml", params) }

// EncodeXMLRoot is EncodeXML with another root element (the req_info
// plaintext of refund notifications uses <root>).
func EncodeXMLRoot(root string, params map[string]string) []byte {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	b.WriteString("<" + root + ">")
	for _, k := range keys {
		b.WriteString("<" + k + ">")
		writeCDATA(&b, params[k])
		b.WriteString("</" + k + ">")
	}
	b.WriteString("</" + root + ">")
	return b.Bytes()
}

// writeCDATA writes v in CDATA sections, splitting any "]]>" inside it. A
// carriage return goes between sections as &#xD;: inside one, a parser
// turns it into a line feed (XML's end-of-line handling), and a signed
// value must come back byte for byte (found by FuzzParseXML).
func writeCDATA(b *bytes.Buffer, v string) {
	b.WriteString("<![CDATA[")
	b.WriteString(cdataEscaper.Replace(v))
	b.WriteString("]]>")
}

var cdataEscaper = strings.NewReplacer("]]>", "]]]]><![CDATA[>", "\r", "]]>&#xD;<![CDATA[")

// NotifyReply returns the exact bytes WeChat expects from a notification
// handler (v2 支付结果通知 and 退款结果通知): SUCCESS/OK, or FAIL with a reason
// to ask for a re-send.
func NotifyReply(ok bool, msg string) []byte {
	code := "FAIL"
	if ok {
		code = "SUCCESS"
		if msg == "" {
			msg = "OK"
		}
	}
	var b bytes.Buffer
	b.WriteString("<xml><return_code>")
	writeCDATA(&b, code)
	b.WriteString("</return_code><return_msg>")
	writeCDATA(&b, msg)
	b.WriteString("</return_msg></xml>")
	return b.Bytes()
}
