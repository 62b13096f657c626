"""The one catalogue of problems: stable machine codes, HTTP status, messages in zh-CN and en."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Problem:
    code: str  # stable machine code, e.g. "sync.sequence_gap"
    status: int  # HTTP status when it ends a request
    en: str  # str.format template over the error's params
    zh: str

    def message(self, lang: str, params: dict[str, Any]) -> str:
        template = self.zh if lang == "zh" else self.en
        try:
            return template.format(**params)
        except (KeyError, IndexError):
            return template


CATALOGUE: dict[str, Problem] = {}


def _p(code: str, status: int, en: str, zh: str) -> None:
    assert code not in CATALOGUE, code
    CATALOGUE[code] = Problem(code, status, en, zh)


class DomainError(Exception):
    """A rejection the caller can act on. Raised by services and rules; mapped to HTTP in one place."""

    def __init__(self, code: str, *, errors: Any = None, **params: Any) -> None:
        if code not in CATALOGUE:
            raise KeyError(f"unknown problem code {code!r}: add it to fieldsync.errors")
        super().__init__(code)
        self.code = code
        self.params = params
        self.errors = errors

    @property
    def problem(self) -> Problem:
        return CATALOGUE[self.code]

    @property
    def status(self) -> int:
        return self.problem.status

    def message(self, lang: str = "en") -> str:
        return self.problem.message(lang, self.params)


# --- HTTP-level (one per status the API can answer with on its own) -------------------------
_p("request.bad_request", 400, "The request is malformed.", "请求格式错误。")
_p("request.malformed_json", 400, "The request body is not valid JSON.", "请求体不是有效的 JSON。")
_p("request.invalid", 422, "The request has invalid fields.", "请求中有无效字段。")
_p("request.not_found", 404, "Not found.", "未找到。")
_p("request.method_not_allowed", 405, "Method not allowed.", "不允许使用该方法。")
_p("request.too_large", 413, "The request body is too large.", "请求体过大。")
_p("request.unsupported_media_type", 415, "Send the body as application/json.", "请以 application/json 格式发送请求体。")
_p("request.precondition_failed", 412, "The resource has changed.", "资源已被修改。")
_p("request.conflict", 409, "The request conflicts with the current state.", "请求与当前状态冲突。")
_p("server.error", 500, "Internal server error.", "服务器内部错误。")
_p("server.unavailable", 503, "The service is unavailable.", "服务暂不可用。")

# --- identity and permission ----------------------------------------------------------------
_p("auth.required", 401, "Sign in first: send Authorization: Bearer <token>.", "请先登录：请求需携带 Authorization: Bearer <令牌>。")
_p("auth.invalid_credentials", 401, "Wrong username or password.", "用户名或密码错误。")
_p("auth.token_invalid", 401, "The token is not valid.", "令牌无效。")
_p("auth.token_expired", 401, "The token has expired: sign in again.", "令牌已过期，请重新登录。")
_p("auth.device_revoked", 401, "This device has been revoked.", "该设备已被停用。")
_p("auth.account_disabled", 401, "This account is disabled.", "该账号已停用。")
_p("auth.forbidden", 403, "Your role does not allow this.", "您的角色无权执行此操作。")
_p("auth.device_owned_by_other", 409, "This device is registered to another user.", "该设备已登记在其他用户名下。")
_p("identity.unknown_device", 404, "Unknown device: {id}.", "未知设备：{id}。")
_p("auth.device_id_mismatch", 403, "The device id does not match the token's device.", "设备编号与令牌绑定的设备不一致。")

# --- organisation, roster and catalogue -----------------------------------------------------
_p("org.unknown_department", 422, "Unknown department: {id}.", "未知部门：{id}。")
_p("org.unknown_team", 422, "Unknown team: {id}.", "未知执法队：{id}。")
_p("org.unknown_person", 422, "Unknown person: {id}.", "未知人员：{id}。")
_p("org.unknown_matter", 422, "Unknown matter: {code}.", "未知执法事项：{code}。")
_p("org.unknown_grid", 422, "Unknown grid: {id}.", "未知网格：{id}。")
_p("org.person_not_found", 404, "No such person: {id}.", "未找到该人员：{id}。")
_p("org.certificate_not_found", 404, "No such certificate: {id}.", "未找到该执法证：{id}。")
_p("org.username_taken", 409, "The username {username} is taken.", "用户名 {username} 已被占用。")
_p("org.certificate_number_taken", 409, "Certificate number {number} is already registered.", "执法证号 {number} 已登记。")
_p("org.certificate_invalid_period", 422, "A certificate's valid_to must be after its valid_from.", "执法证有效期截止日期必须晚于起始日期。")
_p("org.certificate_already_revoked", 409, "The certificate is already revoked.", "该执法证已被吊销。")
_p("org.department_street_mismatch", 422, "The department is not on this team.", "该部门不属于本执法队。")
