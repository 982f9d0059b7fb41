// RFC 9110 5.6.2 `tchar`: the characters of a token (header names, content-coding names,
// parameter names). Header-only and dependency-free, for the parsers that need it.
#pragma once

namespace sluice::http {

[[nodiscard]] constexpr bool is_tchar(char c) noexcept {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

}  // namespace sluice::http
