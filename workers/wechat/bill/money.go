package bill

import (
	"fmt"
	"strconv"
	"strings"
)

// FormatFen writes an amount in fen as a bill does: yuan with two decimals
// (8800 → "88.00").
func FormatFen(fen int64) string {
	sign := ""
	if fen < 0 {
		sign, fen = "-", -fen
	}
	return fmt.Sprintf("%s%d.%02d", sign, fen/100, fen%100)
}

// ParseFen reads an amount in yuan with at most two decimals ("88.00",
// "0.0" and "2" of older bills) into fen. Signs, exponents, spaces and more
// decimals are refused: an amount is never a guess.
func ParseFen(s string) (int64, error) {
	n, err := parseDecimal(s, 2, false)
	if err != nil {
		return 0, fmt.Errorf("amount %q: %w", s, err)
	}
	return n, nil
}

// Fee is a fee in hundred-thousandths of a yuan (0.001 fen): 手续费 is printed
// with five decimals ("0.53000"), negative on refund rows (the fee given
// back). WeChat's fees are whole fen, but a Fee holds whatever a bill says.
type Fee int64

// FeeFromFen is a fee of fen fen.
func FeeFromFen(fen int64) Fee { return Fee(fen * 1000) }

// Fen is the fee in fen, and whether it is a whole number of fen.
func (f Fee) Fen() (int64, bool) { return int64(f) / 1000, int64(f)%1000 == 0 }

// String writes the fee as a bill does: yuan with five decimals ("0.53000", "-0.18000").
func (f Fee) String() string {
	n, sign := int64(f), ""
	if n < 0 {
		sign, n = "-", -n
	}
	return fmt.Sprintf("%s%d.%05d", sign, n/100000, n%100000)
}

// ParseFee reads a fee: yuan with at most five decimals, a leading minus allowed.
func ParseFee(s string) (Fee, error) {
	n, err := parseDecimal(s, 5, true)
	if err != nil {
		return 0, fmt.Errorf("fee %q: %w", s, err)
	}
	return Fee(n), nil
}

// Rate is a fee rate in hundredths of a percent: 费率 "0.60%" is 60.
type Rate int64

// String writes the rate as a bill does: "0.60%".
func (r Rate) String() string {
	n, sign := int64(r), ""
	if n < 0 {
		sign, n = "-", -n
	}
	return fmt.Sprintf("%s%d.%02d%%", sign, n/100, n%100)
}

// ParseRate reads a rate such as "0.60%" (at most two decimals, the percent sign required).
func ParseRate(s string) (Rate, error) {
	num, ok := strings.CutSuffix(s, "%")
	if !ok {
		return 0, fmt.Errorf("rate %q: no %% sign", s)
	}
	n, err := parseDecimal(num, 2, false)
	if err != nil {
		return 0, fmt.Errorf("rate %q: %w", s, err)
	}
	return Rate(n), nil
}

// FeeOf is the fee at rate r on fen, as WeChat computes each row's: the
// amount times the rate, rounded to the fen, half away from zero (88.00 at
// 0.60% is 0.528, charged 0.53; 12.34 is 0.07404, charged 0.07). How WeChat
// rounds an exact half fen is not published: half away from zero is wxflow's
// reading.
func (r Rate) FeeOf(fen int64) Fee {
	p := fen * int64(r) // in 1/10,000 fen
	neg := p < 0
	if neg {
		p = -p
	}
	q := (p + 5000) / 10000
	if neg {
		q = -q
	}
	return FeeFromFen(q)
}

// parseDecimal reads digits with at most maxDec decimals into an integer
// scaled by 10^maxDec; a leading minus only when signed.
func parseDecimal(s string, maxDec int, signed bool) (int64, error) {
	neg := false
	if signed && strings.HasPrefix(s, "-") {
		neg, s = true, s[1:]
	}
	whole, frac, dot := strings.Cut(s, ".")
	if whole == "" || len(whole) > 15 || dot && (frac == "" || len(frac) > maxDec) || !digits(whole) || !digits(frac) {
		return 0, fmt.Errorf("not a decimal with at most %d decimals", maxDec)
	}
	frac += strings.Repeat("0", maxDec-len(frac))
	n, err := strconv.ParseInt(whole+frac, 10, 64)
	if err != nil {
		return 0, err
	}
	if neg {
		n = -n
	}
	return n, nil
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
