"""RAM policy grammar check and evaluation, as STS and OSS apply them to STS credentials.

Two callers use this module. The STS side validates the ``Policy`` parameter of AssumeRole
(size, then grammar) and refuses it with STS's own error codes. The OSS side authorizes every
request made with STS credentials: the effective rights are the *intersection* of the role's
policy and the session policy, so a session policy can only narrow what the role may do.

Matching rules, each chosen to be at least as strict as the real service so that the server's
session policies are really tested:

* ``Action`` matches case-insensitively (RAM: "the value of the Action element is not
  case-sensitive"), ``Resource`` case-sensitively (OSS object keys are case-sensitive).
* ``*`` matches any run of characters (including ``/``) and ``?`` exactly one. Nothing else is
  special: no ``[]`` classes, no escapes. A hand-written matcher is used, never ``fnmatch`` or
  a backtracking regex, so a 2 KB hostile pattern cannot stall the emulator.
* Resources match field by field like ARNs (``acs:service:region:account:relative-id``): a
  ``*`` in the region or account field cannot swallow a ``:`` and reach into the relative id,
  so an object key such as ``uploads/bob/x:examplebucket/uploads/alice/y`` cannot make
  ``acs:oss:*:*:examplebucket/uploads/alice/*`` match an object under ``uploads/bob/``.
* A condition key absent from the request context makes that condition false for every
  operator, negated ones included. An Allow that depends on it therefore grants nothing and a
  Deny that depends on it denies nothing; documented here because AWS treats absent keys in
  negated operators differently.

Condition keys the OSS side puts in the context: ``acs:SourceIp``, ``acs:SecureTransport``,
``acs:CurrentTime`` on every request; ``oss:Prefix`` and ``oss:Delimiter`` on ListObjects; and
``oss:x-oss-object-acl`` (the requested object ACL) on PutObject, PostObject,
Initiate/CompleteMultipartUpload, CopyObject and PutObjectAcl, *only when the request asks for an
ACL*. The OSS docs do not say what the key holds when the header is absent, so absent it is (see
``oss_acl``): the documented ``Deny ... StringNotEquals oss:x-oss-object-acl [private, default]``
then refuses ``public-read`` and lets a plain upload through.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, Literal, TypeVar

#: STS AssumeRole error codes and messages (STS API reference, AssumeRole error codes).
POLICY_GRAMMAR_CODE = "InvalidParameter.PolicyGrammar"
POLICY_GRAMMAR_MESSAGE = "The parameter Policy has not passed grammar check."
POLICY_SIZE_CODE = "InvalidParameter.PolicySize"
#: Raised from 1024 to 2048 in the STS 2015-04-01 changeset of 2022-09-27.
MAX_SESSION_POLICY_CHARS = 2048
POLICY_SIZE_MESSAGE = f"The size of Policy must be smaller than {MAX_SESSION_POLICY_CHARS} bytes."

#: The only policy language version RAM knows ("Policy structure and syntax").
POLICY_VERSION = "1"
#: Elements a RAM policy and its statements may hold ("Policy structure and syntax"). Principal
#: only exists in resource-based policies and Sid is not part of RAM's grammar, so both are
#: refused in a session policy.
_TOP_LEVEL_KEYS = frozenset({"Version", "Statement"})
_STATEMENT_KEYS = frozenset(
    {"Effect", "Action", "NotAction", "Resource", "NotResource", "Condition"}
)
_EFFECTS = ("Allow", "Deny")
#: Fields of an Alibaba Cloud Resource Name: acs:<service>:<region>:<account-id>:<relative-id>.
_ARN_FIELDS = 5

Verdict = Literal["allow", "deny", "none"]


class PolicyError(ValueError):
    """A policy STS refuses; ``code`` and ``message`` are what STS answers with."""

    def __init__(self, code: str, message: str, detail: str | None = None) -> None:
        super().__init__(f"{code}: {message}" + (f" ({detail})" if detail else ""))
        self.code = code
        self.message = message
        #: Why the emulator refused it; for logs and tests, never sent as the STS message.
        self.detail = detail


def _grammar_error(detail: str) -> PolicyError:
    return PolicyError(POLICY_GRAMMAR_CODE, POLICY_GRAMMAR_MESSAGE, detail)


def check_session_policy_size(text: str) -> None:
    """Refuse an AssumeRole ``Policy`` longer than STS accepts, before parsing it.

    STS measures the raw parameter, whitespace included, so this runs on the text, not on the
    normalised document.
    """
    if len(text) > MAX_SESSION_POLICY_CHARS:
        raise PolicyError(POLICY_SIZE_CODE, POLICY_SIZE_MESSAGE, f"{len(text)} characters")


# --------------------------------------------------------------------------- wildcard matching


@lru_cache(maxsize=4096)
def _glob(pattern: str, ignore_case: bool) -> Callable[[str], bool]:
    """Compile a ``*``/``?`` pattern into a predicate that runs in near-linear time.

    The pattern is split on ``*`` into fixed-width pieces (literal characters and ``?``). The
    first piece is anchored at the start, the last at the end, and the ones between are found
    left to right, each at its leftmost position: taking the leftmost occurrence never loses a
    match, so no backtracking is needed.
    """
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)

    def piece(text: str) -> re.Pattern[str]:
        return re.compile("".join("." if ch == "?" else re.escape(ch) for ch in text), flags)

    pieces = pattern.split("*")
    if len(pieces) == 1:
        whole = piece(pattern)
        return lambda value: whole.fullmatch(value) is not None

    head_text, *middle_texts, tail_text = pieces
    head, tail = piece(head_text), piece(tail_text)
    middle = [piece(text) for text in middle_texts if text]
    fixed = len(head_text) + len(tail_text)

    def match(value: str) -> bool:
        if len(value) < fixed:
            return False
        end = len(value) - len(tail_text)
        if head.fullmatch(value, 0, len(head_text)) is None:
            return False
        if tail.fullmatch(value, end) is None:
            return False
        pos = len(head_text)
        for part in middle:
            found = part.search(value, pos, end)
            if found is None:
                return False
            pos = found.end()
        return True

    return match


def match_action(pattern: str, action: str) -> bool:
    """Whether an Action pattern such as ``oss:Put*`` covers ``action`` (case-insensitive)."""
    return _glob(pattern, True)(action)


def match_wildcard(pattern: str, value: str) -> bool:
    """Whether a case-sensitive ``*``/``?`` pattern covers all of ``value`` (e.g. a Principal)."""
    return _glob(pattern, False)(value)


def match_resource(pattern: str, resource: str) -> bool:
    """Whether a Resource pattern covers ``resource``, field by field like an ARN.

    The first four colon-separated fields of the pattern are matched against the same fields of
    the resource; the pattern's last field is matched against everything that remains (a
    relative id may itself contain ``:``). A bare ``*`` therefore still matches everything and
    ``acs:oss:*`` every OSS resource, but a wildcard never crosses a field boundary.
    """
    pattern_fields = pattern.split(":", _ARN_FIELDS - 1)
    resource_fields = resource.split(":", _ARN_FIELDS - 1)
    last = len(pattern_fields) - 1
    if len(resource_fields) <= last:
        return False
    for index in range(last):
        if not _glob(pattern_fields[index], False)(resource_fields[index]):
            return False
    return _glob(pattern_fields[last], False)(":".join(resource_fields[last:]))


# --------------------------------------------------------------------------- conditions


def _parse_number(text: str) -> Decimal:
    try:
        number = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"not a number: {text!r}") from None
    if not number.is_finite():
        raise ValueError(f"not a finite number: {text!r}")
    return number


def _parse_date(text: str) -> datetime:
    """ISO 8601 (``2019-08-12T17:00:00+08:00``, ``…Z``); a date without a zone is UTC."""
    moment = datetime.fromisoformat(text.strip())
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered not in ("true", "false"):
        raise ValueError(f"not a boolean: {text!r}")
    return lowered == "true"


def _parse_network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text.strip(), strict=False)


def _parse_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text.strip())


def _string_like(pattern: object, value: object) -> bool:
    return _glob(str(pattern), False)(str(value))


_Want = TypeVar("_Want")
_Have = TypeVar("_Have")
_Value = TypeVar("_Value")

#: One operator family: how to read a policy value, how to read the request value, and the
#: positive test between them. Parsers raise ValueError on bad input.
_Family = tuple[Callable[[str], _Want], Callable[[str], _Have], Callable[[_Want, _Have], bool]]

_STRING: _Family[str, str] = (str, str, lambda want, have: want == have)
_STRING_NOCASE: _Family[str, str] = (str.casefold, str.casefold, lambda want, have: want == have)
_STRING_LIKE: _Family[str, str] = (str, str, _string_like)
_BOOL: _Family[bool, bool] = (_parse_bool, _parse_bool, lambda want, have: want == have)
_IP: _Family[
    ipaddress.IPv4Network | ipaddress.IPv6Network, ipaddress.IPv4Address | ipaddress.IPv6Address
] = (_parse_network, _parse_address, lambda net, addr: addr in net)


def _ordered(
    parse: Callable[[str], _Value], test: Callable[[_Value, _Value], bool]
) -> _Family[_Value, _Value]:
    return (parse, parse, test)


#: Operator -> (family, negated). The RAM "Conditional operators" page lists exactly these five
#: families; negated operators are true when the request value matches none of the values.
_OPERATORS: dict[str, tuple[_Family[Any, Any], bool]] = {
    "StringEquals": (_STRING, False),
    "StringNotEquals": (_STRING, True),
    "StringEqualsIgnoreCase": (_STRING_NOCASE, False),
    "StringNotEqualsIgnoreCase": (_STRING_NOCASE, True),
    "StringLike": (_STRING_LIKE, False),
    "StringNotLike": (_STRING_LIKE, True),
    "NumericEquals": (_ordered(_parse_number, lambda want, have: have == want), False),
    "NumericNotEquals": (_ordered(_parse_number, lambda want, have: have == want), True),
    "NumericLessThan": (_ordered(_parse_number, lambda want, have: have < want), False),
    "NumericLessThanEquals": (_ordered(_parse_number, lambda want, have: have <= want), False),
    "NumericGreaterThan": (_ordered(_parse_number, lambda want, have: have > want), False),
    "NumericGreaterThanEquals": (_ordered(_parse_number, lambda want, have: have >= want), False),
    "DateEquals": (_ordered(_parse_date, lambda want, have: have == want), False),
    "DateNotEquals": (_ordered(_parse_date, lambda want, have: have == want), True),
    "DateLessThan": (_ordered(_parse_date, lambda want, have: have < want), False),
    "DateLessThanEquals": (_ordered(_parse_date, lambda want, have: have <= want), False),
    "DateGreaterThan": (_ordered(_parse_date, lambda want, have: have > want), False),
    "DateGreaterThanEquals": (_ordered(_parse_date, lambda want, have: have >= want), False),
    "Bool": (_BOOL, False),
    "IpAddress": (_IP, False),
    "NotIpAddress": (_IP, True),
}


def _condition_holds(condition: Mapping[str, Mapping], context: Mapping[str, str]) -> bool:
    """Every operator, and every key inside it, must hold; any listed value may satisfy a key."""
    by_lower_key = {key.lower(): value for key, value in context.items()}
    for operator, keys in condition.items():
        if operator not in _OPERATORS:
            return False  # only reachable with an unchecked document: fail closed
        (parse_want, parse_have, test), negated = _OPERATORS[operator]
        for key, values in keys.items():
            raw = by_lower_key.get(key.lower())
            if raw is None:
                return False
            try:
                have = parse_have(raw)
            except ValueError:
                return False  # a request value of the wrong type satisfies nothing
            hit = any(test(parse_want(value), have) for value in _as_list(values))
            if hit == negated:
                return False
    return True


# --------------------------------------------------------------------------- grammar


def _reject_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """Refuse repeated keys: with ``{"Effect": "Deny", "Effect": "Allow"}`` two parsers could
    disagree on the effect, so the emulator does not guess."""
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            raise _grammar_error(f"duplicate key {key!r}")
        result[key] = value
    return result


def _reject_constant(name: str) -> object:
    raise _grammar_error(f"{name} is not JSON")


def _string_list(value: object, element: str) -> list[str]:
    """A string or a non-empty list of non-empty strings, as a list."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise _grammar_error(f"{element} must be a string or a non-empty list of strings")
    for item in items:
        if not isinstance(item, str) or not item:
            raise _grammar_error(f"{element} holds {item!r}, not a non-empty string")
    return list(items)


def _condition_value(value: object, where: str) -> str:
    # JSON true/false/numbers are accepted and read as their JSON text, as RAM shows values such
    # as "Bool": {"acs:SecureTransport": "true"} either quoted or bare.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        return value
    raise _grammar_error(f"{where} holds {value!r}, not a string, number or boolean")


def _normalise_condition(condition: object) -> dict[str, dict[str, list[str]]]:
    if not isinstance(condition, dict) or not condition:
        raise _grammar_error("Condition must be a non-empty object")
    normalised: dict[str, dict[str, list[str]]] = {}
    for operator, keys in condition.items():
        if operator not in _OPERATORS:
            raise _grammar_error(f"unknown condition operator {operator!r}")
        (parse_want, _, _), _ = _OPERATORS[operator]
        if not isinstance(keys, dict) or not keys:
            raise _grammar_error(f"{operator} must map condition keys to values")
        normalised[operator] = {}
        for key, raw_values in keys.items():
            if not key:
                raise _grammar_error(f"{operator} has an empty condition key")
            raw_list = raw_values if isinstance(raw_values, list) else [raw_values]
            if not raw_list:
                raise _grammar_error(f"{operator}.{key} has no values")
            values = [_condition_value(item, f"{operator}.{key}") for item in raw_list]
            for text in values:
                try:
                    parse_want(text)
                except ValueError as exc:
                    raise _grammar_error(f"{operator}.{key}: {exc}") from None
            normalised[operator][key] = values
    return normalised


def _normalise_statement(statement: object, index: int) -> dict:
    if not isinstance(statement, dict):
        raise _grammar_error(f"Statement[{index}] is not an object")
    unknown = set(statement) - _STATEMENT_KEYS
    if unknown:
        raise _grammar_error(f"Statement[{index}] has unknown elements {sorted(unknown)}")
    effect = statement.get("Effect")
    if effect not in _EFFECTS:
        raise _grammar_error(f"Statement[{index}].Effect must be 'Allow' or 'Deny', not {effect!r}")
    normalised: dict = {"Effect": effect}
    for positive, negative in (("Action", "NotAction"), ("Resource", "NotResource")):
        present = [name for name in (positive, negative) if name in statement]
        if len(present) != 1:
            raise _grammar_error(f"Statement[{index}] needs exactly one of {positive}/{negative}")
        name = present[0]
        normalised[name] = _string_list(statement[name], f"Statement[{index}].{name}")
    if "Condition" in statement:
        normalised["Condition"] = _normalise_condition(statement["Condition"])
    return normalised


def normalise_policy(document: object) -> dict:
    """Check an already-decoded policy document and return its normalised form.

    Used for the role's own policy (configured as a dict) and by :func:`parse_policy`. The result
    has ``Version`` ``"1"``, ``Statement`` a list, Action/NotAction/Resource/NotResource lists of
    strings and Condition ``{operator: {key: [values]}}``.
    """
    if not isinstance(document, dict):
        raise _grammar_error("a policy must be a JSON object")
    unknown = set(document) - _TOP_LEVEL_KEYS
    if unknown:
        raise _grammar_error(f"unknown top-level elements {sorted(unknown)}")
    if document.get("Version") != POLICY_VERSION:
        raise _grammar_error(f"Version must be the string {POLICY_VERSION!r}")
    if "Statement" not in document:
        raise _grammar_error("Statement is required")
    statements = document["Statement"]
    if isinstance(statements, dict):
        statements = [statements]
    # "A list of one or more permission statements" (Policy structure and syntax).
    if not isinstance(statements, list) or not statements:
        raise _grammar_error("Statement must be a non-empty list of statements")
    return {
        "Version": POLICY_VERSION,
        "Statement": [_normalise_statement(item, index) for index, item in enumerate(statements)],
    }


def parse_policy(text: str) -> dict:
    """Validate a RAM policy document's grammar, as STS does for AssumeRole's ``Policy``.

    Returns the normalised document (see :func:`normalise_policy`); raises :class:`PolicyError`
    with code ``InvalidParameter.PolicyGrammar``. The size limit is a separate check
    (:func:`check_session_policy_size`) because STS applies it to the raw text first.
    """
    try:
        document = json.loads(
            text, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant
        )
    except (json.JSONDecodeError, TypeError, RecursionError) as exc:
        raise _grammar_error(f"not JSON: {exc}") from None
    return normalise_policy(document)


# --------------------------------------------------------------------------- evaluation


def _as_list(value: str | Iterable[str]) -> Iterable[str]:
    return [value] if isinstance(value, str) else value


def _statement_applies(
    statement: Mapping, action: str, resource: str, context: Mapping[str, str]
) -> bool:
    if "Action" in statement:
        if not any(match_action(p, action) for p in _as_list(statement["Action"])):
            return False
    elif any(match_action(p, action) for p in _as_list(statement.get("NotAction", ()))):
        return False
    if "Resource" in statement:
        if not any(match_resource(p, resource) for p in _as_list(statement["Resource"])):
            return False
    elif any(match_resource(p, resource) for p in _as_list(statement.get("NotResource", ()))):
        return False
    condition = statement.get("Condition")
    return not condition or _condition_holds(condition, context)


def evaluate(
    policy: Mapping, action: str, resource: str, context: Mapping[str, str] | None = None
) -> Verdict:
    """One policy's verdict for one request.

    ``"deny"`` if any applicable Deny statement matches, else ``"allow"`` if any Allow matches,
    else ``"none"`` (an implicit deny). ``policy`` is a normalised document; single strings in
    place of lists are tolerated so a hand-written role policy works too.
    """
    context = context or {}
    statements = policy.get("Statement", ())
    if isinstance(statements, Mapping):
        statements = [statements]
    allowed = False
    for statement in statements:
        if not _statement_applies(statement, action, resource, context):
            continue
        if statement.get("Effect") == "Deny":
            return "deny"
        if statement.get("Effect") == "Allow":
            allowed = True
    return "allow" if allowed else "none"


def is_allowed(
    policies: Sequence[Mapping],
    action: str,
    resource: str,
    context: Mapping[str, str] | None = None,
) -> bool:
    """Whether STS credentials carrying ``policies`` may do ``action`` on ``resource``.

    Intersection semantics: every policy (the role's, then the session's when one was given)
    must allow and none may deny. An empty sequence returns False: callers pass ``()`` only for
    the root key, which is never evaluated, so failing closed costs nothing and turns a wiring
    mistake into a visible AccessDenied instead of silent full access.
    """
    if not policies:
        return False
    verdicts = [evaluate(policy, action, resource, context) for policy in policies]
    return "deny" not in verdicts and all(verdict == "allow" for verdict in verdicts)
