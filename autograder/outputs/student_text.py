"""What a student wrote, made fit for the tools the course staff open: text, never markup or
terminal codes.

- `printable(text)`: any student string (a file name, an id, an exception's message) without
  control characters: C0 and C1 controls (so no ANSI escape sequence can start: ESC and CSI
  are among them) and the Unicode format characters that reorder or hide text (bidirectional
  overrides and isolates, zero-width characters). Newlines and tabs are kept on request.
- `safe_markdown(source)`: a markdown cell's source as formgrader and nbgrader's feedback may
  render it. Whether a source is safe is decided on the tokens of the very parser that renders
  it (nbconvert's MarkdownWithMath, on mistune), against an allowlist: text, emphasis, code,
  math, headings, lists, quotes, tables, links to http(s)/mailto/#anchors, and images drawn
  from the cell's own attachments. A safe source is kept as written, less its control
  characters (its markdown and LaTeX render as the student meant). Anything else (raw HTML in
  any form, a `javascript:` or `data:` link, an image fetched from elsewhere, a token this
  allowlist does not know) makes the whole answer shown as its literal text, in an indented
  code block under a one-line note: a code block's content is text in every CommonMark
  renderer, so nothing in it can be markup.
- `safe_attachments(attachments)`: a markdown cell's attachments, raster images only.
"""
import functools
import unicodedata
from urllib.parse import urlsplit

# format characters that change how the text around them reads (Trojan Source), or hide text
INVISIBLE = {"\u061c", "\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\u2060", "\ufeff",
             *map(chr, range(0x202a, 0x202f)), *map(chr, range(0x2066, 0x206a))}

ALLOWED_TOKENS = {
    "paragraph", "text", "emphasis", "strong", "codespan", "inline_math", "block_math", "softbreak", "linebreak",
    "blank_line", "heading", "list", "list_item", "task_list_item", "block_text", "block_quote", "thematic_break",
    "block_code", "table", "table_head", "table_body", "table_row", "table_cell", "strikethrough", "def_list",
    "def_list_head", "def_list_item", "link", "image"}
LINK_SCHEMES = {"http", "https", "mailto"}
ATTACHMENT_TYPES = {"image/png", "image/jpeg", "image/gif"}     # raster images: no script can live in one
VERBATIM_NOTE = ("*This answer holds raw HTML, or a link or image that cannot be shown safely; "
                 "its text, verbatim:*")


def printable(text, newlines=False):
    """text without control or invisible format characters (newlines and tabs kept when asked)."""
    kept = "\n\t" if newlines else ""
    return "".join(ch for ch in str(text)
                   if ch in kept or (unicodedata.category(ch) != "Cc" and ch not in INVISIBLE))


@functools.lru_cache(maxsize=1)
def _parser():
    """nbconvert's markdown parser, without a renderer: it returns the tokens it parsed."""
    from nbconvert.filters.markdown_mistune import MarkdownWithMath
    return MarkdownWithMath(renderer=None)     # no renderer: the parser's tokens


def _safe_url(url, image):
    """A link to the web or a mail address, an anchor in the page; for an image, an attachment."""
    url = "".join(ch for ch in url if ch > " ")     # browsers ignore whitespace and controls in a URL
    if image:
        return url.startswith("attachment:")
    if url.startswith("#"):
        return True
    try:
        return urlsplit(url).scheme.lower() in LINK_SCHEMES
    except ValueError:
        return False


def _tokens_safe(tokens):
    """True when every token, its children included, is allowed (links and images by their URL)."""
    for token in tokens:
        kind = token.get("type")
        if kind not in ALLOWED_TOKENS:
            return False
        if kind in ("link", "image") and not _safe_url(str(token.get("attrs", {}).get("url", "")), kind == "image"):
            return False
        if not _tokens_safe(token.get("children") or ()):
            return False
    return True


def is_safe_markdown(source):
    """True when the renderer's parser finds only allowed tokens in source."""
    return _tokens_safe(_parser()(source))


def verbatim(source):
    """source shown as its literal text: a note, then an indented code block of every line."""
    lines = printable(source, newlines=True).split("\n")
    return VERBATIM_NOTE + "\n\n" + "\n".join("    " + line for line in lines)


def safe_markdown(source):
    """source itself when it is safe markdown, else its verbatim text (see the module's doc)."""
    source = printable(source, newlines=True)
    if is_safe_markdown(source):
        return source
    shown = verbatim(source)
    if not is_safe_markdown(shown):     # a code block holds text in every renderer; checked all the same
        raise ValueError("an answer could not be made safe to show")
    return shown


def safe_attachments(attachments):
    """A cell's attachments reduced to raster images (an SVG or HTML attachment can carry script)."""
    kept = {}
    for name, bundle in (attachments or {}).items():
        if isinstance(bundle, dict):
            images = {kind: data for kind, data in bundle.items() if kind in ATTACHMENT_TYPES and isinstance(data, str)}
            if images:
                kept[printable(name)] = images
    return kept
