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

    def __init__(self, code: str, /, *, errors: Any = None, **params: Any) -> None:
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


def flag(code: str, /, **params: Any) -> dict[str, Any]:
    """A flag on a record (a finding the server made, not a rejection), in both languages."""
    problem = CATALOGUE[code]
    return {
        "code": code,
        "message": problem.message("en", params),
        "message_zh": problem.message("zh", params),
        **({"params": params} if params else {}),
    }


# --- HTTP-level (one per status the API can answer with on its own) -------------------------
_p("request.bad_request", 400, "The request is malformed.", "请求格式错误。")
_p("request.malformed_json", 400, "The request body is not valid JSON.", "请求体不是有效的 JSON。")
_p("request.invalid", 422, "The request has invalid fields.", "请求中有无效字段。")
_p("request.not_found", 404, "Not found.", "未找到。")
_p("request.method_not_allowed", 405, "Method not allowed.", "不允许使用该方法。")
_p("request.too_large", 413, "The request body is too large.", "请求体过大。")
_p(
    "request.unsupported_media_type",
    415,
    "Send the body as application/json.",
    "请以 application/json 格式发送请求体。",
)
_p("request.precondition_failed", 412, "The resource has changed.", "资源已被修改。")
_p("request.conflict", 409, "The request conflicts with the current state.", "请求与当前状态冲突。")
_p("server.error", 500, "Internal server error.", "服务器内部错误。")
_p("server.unavailable", 503, "The service is unavailable.", "服务暂不可用。")

# --- identity and permission ----------------------------------------------------------------
_p(
    "auth.required",
    401,
    "Sign in first: send Authorization: Bearer <token>.",
    "请先登录：请求需携带 Authorization: Bearer <令牌>。",
)
_p("auth.invalid_credentials", 401, "Wrong username or password.", "用户名或密码错误。")
_p("auth.token_invalid", 401, "The token is not valid.", "令牌无效。")
_p("auth.token_expired", 401, "The token has expired: sign in again.", "令牌已过期，请重新登录。")
_p("auth.device_revoked", 401, "This device has been revoked.", "该设备已被停用。")
_p("auth.account_disabled", 401, "This account is disabled.", "该账号已停用。")
_p("auth.forbidden", 403, "Your role does not allow this.", "您的角色无权执行此操作。")
_p(
    "auth.device_owned_by_other",
    409,
    "This device is registered to another user.",
    "该设备已登记在其他用户名下。",
)
_p("identity.unknown_device", 404, "Unknown device: {id}.", "未知设备：{id}。")
_p(
    "auth.device_id_mismatch",
    403,
    "The device id does not match the token's device.",
    "设备编号与令牌绑定的设备不一致。",
)

# --- organisation, roster and catalogue -----------------------------------------------------
_p("org.unknown_department", 422, "Unknown department: {id}.", "未知部门：{id}。")
_p("org.unknown_team", 422, "Unknown team: {id}.", "未知执法队：{id}。")
_p("org.unknown_person", 422, "Unknown person: {id}.", "未知人员：{id}。")
_p("org.unknown_matter", 422, "Unknown matter: {code}.", "未知执法事项：{code}。")
_p("org.unknown_grid", 422, "Unknown grid: {id}.", "未知网格：{id}。")
_p("org.unknown_street", 422, "Unknown street: {id}.", "未知街道：{id}。")
_p(
    "org.transfer_same_street",
    409,
    "{username} is already on that street.",
    "{username} 已在该街道。",
)
_p(
    "org.transfer_holds_reports",
    409,
    "{username} is responsible for {count} report(s) of this street: name who takes them over "
    "(reports_to).",
    "{username} 负责本街道 {count} 件上报，请指定接手人员（reports_to）。",
)
_p(
    "org.transfer_draft_reports",
    409,
    "{username} has {count} report draft(s) not yet submitted: they are submitted or deleted "
    "on the phone before the transfer.",
    "{username} 有 {count} 件上报草稿尚未提交，请先在手机上提交或删除后再调动。",
)
_p("org.person_not_found", 404, "No such person: {id}.", "未找到该人员：{id}。")
_p("org.certificate_not_found", 404, "No such certificate: {id}.", "未找到该执法证：{id}。")
_p("org.username_taken", 409, "The username {username} is taken.", "用户名 {username} 已被占用。")
_p(
    "org.certificate_number_taken",
    409,
    "Certificate number {number} is already registered.",
    "执法证号 {number} 已登记。",
)
_p(
    "org.certificate_invalid_period",
    422,
    "A certificate's valid_to must be after its valid_from.",
    "执法证有效期截止日期必须晚于起始日期。",
)
_p(
    "org.certificate_already_revoked",
    409,
    "The certificate is already revoked.",
    "该执法证已被吊销。",
)
_p(
    "org.department_street_mismatch",
    422,
    "The department is not on this team.",
    "该部门不属于本执法队。",
)

# --- rules, measures and cases (rules package) ---
_p(
    "measure.invalid",
    422,
    "The measure is malformed: it needs an id (UUID), a type and details.",
    "措施格式错误：须包含编号（UUID）、类型和详情。",
)
_p("measure.unknown_type", 422, "Unknown measure type: {type}.", "未知的措施类型：{type}。")
_p("measure.invalid_details", 422, "The measure's details are invalid.", "措施详情填写有误。")
_p(
    "measure.seizure_items_required",
    422,
    "A seizure must list the seized items (item, quantity, unit).",
    "暂扣物品须逐项列明物品名称、数量和单位。",
)
_p(
    "measure.penalty_legal_basis_required",
    422,
    "An on-the-spot penalty needs its legal basis.",
    "当场处罚须写明法律依据。",
)
_p(
    "measure.penalty_over_onsite_limit",
    422,
    "An on-the-spot fine for a party of kind {party_kind} is at most {limit} yuan; this one is {amount} yuan.",
    "对{party_kind_zh}当场处以罚款不得超过{limit}元，本次为{amount}元。",
)
_p("case.unknown_action", 422, "Unknown case action: {action}.", "未知的案件操作：{action}。")
_p(
    "case.transition_not_allowed",
    409,
    "A case that is {state} cannot take the action {action}.",
    "案件处于“{state_zh}”状态，不能执行“{action_zh}”操作。",
)
_p(
    "case.archived",
    409,
    "The case is archived: it and its materials never change again.",
    "案件已归档，案件及相关材料不得再作任何更改。",
)
_p(
    "case.archive_captain_only",
    403,
    "Only the team captain can archive a case.",
    "只有综合执法队队长可以将案件归档。",
)
_p(
    "case.handler_only",
    403,
    "Only a case handler can {action} a case.",
    "只有办案人员可以对案件执行“{action_zh}”操作。",
)
_p(
    "case.other_department",
    403,
    "This case belongs to {department}: only its own case handlers act on it.",
    "该案件属于{department}，只能由该单位的办案人员办理。",
)
_p("case.reason_required", 422, "Declining to file a case needs a reason.", "不予立案须说明理由。")
_p(
    "case.conclusion_required",
    422,
    "Concluding a case needs the decision and a summary.",
    "办结案件须填写处理决定和办理情况摘要。",
)

# --- evidence (evidence package) ---
_p("evidence.empty", 422, "The file is empty.", "文件为空。")
_p(
    "evidence.too_large",
    413,
    "The file is {size} bytes; the limit is {limit} bytes.",
    "文件大小为 {size} 字节，超过上限 {limit} 字节。",
)
_p(
    "evidence.not_an_image",
    422,
    "The file is not a JPEG, PNG or HEIC/HEIF image.",
    "文件不是 JPEG、PNG 或 HEIC/HEIF 格式的图片。",
)
_p(
    "evidence.markup_content",
    422,
    "The file contains web markup or script ({marker}) and cannot be evidence.",
    "文件中含有网页标记或脚本（{marker}），不能作为证据。",
)
_p(
    "evidence.decompression_bomb",
    422,
    "The image declares too many pixels to decode safely (limit {limit}).",
    "图片声明的像素数过多（上限 {limit}），无法安全解码。",
)
_p(
    "evidence.corrupt_image",
    422,
    "The image is truncated or corrupt and cannot be decoded.",
    "图片不完整或已损坏，无法解码。",
)

# --- sync (sync package) ---------------------------------------------------------------------
_p(
    "sync.sequence_gap",
    409,
    "Mutations are missing before this one: send from device_seq {expected_device_seq}.",
    "此前的变更缺失：请从 device_seq {expected_device_seq} 开始重新发送。",
)
_p(
    "sync.sequence_unordered",
    422,
    "Mutations must be sent in increasing device_seq order.",
    "变更必须按 device_seq 递增顺序发送。",
)
_p(
    "sync.cursor_expired",
    410,
    "The sync cursor is too old: sync again from the start.",
    "同步游标已过期，请从头重新同步。",
)
_p(
    "sync.cursor_invalid",
    400,
    "The sync cursor is not valid for this device.",
    "同步游标对本设备无效。",
)
_p(
    "sync.too_many_mutations",
    413,
    "Too many mutations in one push (at most {limit}).",
    "单次推送的变更过多（最多 {limit} 条）。",
)
_p(
    "sync.limit_out_of_range",
    422,
    "limit must be between 1 and {max}.",
    "limit 必须介于 1 与 {max} 之间。",
)
_p("sync.unknown_type", 422, "Unknown mutation type: {type}.", "未知的变更类型：{type}。")
_p("sync.invalid_mutation", 422, "The mutation is not valid.", "变更内容无效。")
_p(
    "sync.invalid_hlc",
    422,
    "The mutation's hybrid logical clock is missing or malformed.",
    "变更的混合逻辑时钟缺失或格式错误。",
)
_p("sync.unknown_field", 422, "Unknown field: {field}.", "未知字段：{field}。")
_p(
    "sync.field_server_owned",
    422,
    "The field {field} is written by the server only.",
    "字段 {field} 只能由服务器写入。",
)
_p(
    "sync.not_a_set_field",
    422,
    "The field {field} is not a set: use set, not add or remove.",
    "字段 {field} 不是集合，请使用 set，而非 add 或 remove。",
)
_p(
    "sync.entity_type_mismatch",
    422,
    "This id belongs to a record of type {entity}.",
    "该编号属于 {entity} 类型的记录。",
)
_p(
    "sync.base_version_from_future",
    422,
    "base_version is newer than the record (version {version}).",
    "base_version 比记录的当前版本（{version}）还新。",
)
_p("sync.unknown_entity", 422, "No such record: {id}.", "记录不存在：{id}。")
_p("sync.record_deleted", 422, "The record was deleted.", "该记录已被删除。")
_p(
    "sync.delete_after_submit",
    422,
    "A submitted record cannot be deleted.",
    "已提交的记录不能删除。",
)
_p(
    "sync.not_in_scope",
    422,
    "The record is outside your street or assignment.",
    "该记录不在您的街道或分工范围内。",
)
_p("sync.not_permitted", 422, "Your role may not write this record.", "您的角色无权写入该记录。")
_p(
    "sync.duplicate_mutation_id",
    422,
    "The mutation id {id} was already used with another device_seq.",
    "变更编号 {id} 已用于其他 device_seq。",
)
_p(
    "sync.replay_unknown",
    422,
    "This device_seq was applied but its result is no longer kept.",
    "该 device_seq 已应用，但结果已不再保存。",
)
_p(
    "sync.clock_skew",
    200,
    "The device clock was {seconds} s off the server clock at sync.",
    "同步时设备时钟与服务器时钟相差 {seconds} 秒。",
)
_p("sync.conflict_not_found", 404, "No such conflict: {id}.", "未找到该冲突：{id}。")
_p(
    "sync.conflict_needs_supervisor",
    403,
    "The record is submitted: a reviewer or the captain resolves this conflict.",
    "记录已提交：此冲突须由审核人员或队长处理。",
)
_p("sync.conflict_resolved", 409, "The conflict is already resolved.", "该冲突已处理。")
_p(
    "inspection.unknown_person",
    422,
    "Person {id} is not on your street's roster.",
    "人员 {id} 不在本街道名册中。",
)
_p(
    "inspection.unknown_finding",
    422,
    "The measure names an unknown finding: {id}.",
    "措施引用了不存在的问题：{id}。",
)
_p(
    "inspection.incomplete",
    422,
    "An inspection needs a matter or a finding before it is submitted.",
    "检查记录提交前须填写执法事项或发现的问题。",
)
_p(
    "inspection.archived",
    409,
    "The inspection's case is archived: it can never change again.",
    "该检查所属案件已归档，不得再作任何修改。",
)
_p(
    "report.incomplete",
    422,
    "A report needs a description or a photo before it is submitted.",
    "上报事件提交前须填写描述或附上照片。",
)

# --- cases and review -------------------------------------------------------------------------
# flags the rule check puts on an inspection (status 200: a mark, never a rejection)
_p(
    "inspection.measure_not_allowed",
    200,
    "A measure is beyond what the tier allows; it is kept and flagged for the captain.",
    "措施超出了该程序允许的范围；已保留并标记，待队长审核。",
)
_p(
    "inspection.measure_unknown_finding",
    200,
    "A measure names a finding that is not in the inspection.",
    "措施关联的问题不在本次检查中。",
)
_p(
    "inspection.penalty_over_onsite_limit",
    200,
    "An on-the-spot fine is over the legal limit; it is kept and flagged for the captain.",
    "当场罚款超过法定上限；已保留并标记，待队长审核。",
)
_p(
    "inspection.tier_claim_mismatch",
    200,
    "The device claimed tier {claimed}; with the server's roster the tier is {tier}.",
    "设备判定的程序为 {claimed}，按服务器名册判定为 {tier}。",
)
_p("inspection.not_found", 404, "No such inspection: {id}.", "未找到该检查记录：{id}。")
_p(
    "inspection.review_not_pending",
    409,
    "The inspection is not awaiting review: it is a draft or already reviewed.",
    "该检查记录不在待审核状态：尚未提交或已审核。",
)
_p("case.not_found", 404, "No such case: {id}.", "未找到该案件：{id}。")
_p(
    "case.referral_not_handled_here",
    409,
    "A referral is whistled to the listed unit {department}: it is not filed by the team.",
    "该问题已吹哨移交挂牌单位 {department}，不由本执法队立案处置。",
)
_p(
    "evidence.archived",
    409,
    "The evidence belongs to an archived case: it never changes again.",
    "该证据属于已归档案件，不得再作任何更改。",
)

# --- uploads (tus) ----------------------------------------------------------------------------
_p(
    "upload.version_unsupported",
    412,
    "Send Tus-Resumable: 1.0.0 (the only tus version served).",
    "请求须携带 Tus-Resumable: 1.0.0（服务器仅支持该 tus 版本）。",
)
_p("upload.not_found", 404, "No such upload.", "未找到该上传。")
_p(
    "upload.expired",
    410,
    "The upload expired before it was finished: start it again.",
    "该上传在完成前已过期，请重新上传。",
)
_p(
    "upload.part_missing",
    410,
    "This server does not hold the bytes received so far for this upload: start it again.",
    "本服务器上没有该上传已接收的数据，请重新上传。",
)
_p(
    "upload.failed",
    410,
    "The upload was refused ({error}): start a new one.",
    "该上传已被拒收（{error}），请重新上传。",
)
_p(
    "upload.invalid_metadata",
    400,
    "Upload-Metadata is invalid: {reason}.",
    "Upload-Metadata 无效：{reason}。",
)
_p(
    "upload.length_required",
    400,
    "Upload-Length is required: a non-negative whole number of bytes.",
    "须提供 Upload-Length：非负整数字节数。",
)
_p(
    "upload.length_exceeded",
    413,
    "The chunk goes past the declared length of {length} bytes.",
    "本次数据超出了声明的文件长度 {length} 字节。",
)
_p(
    "upload.offset_mismatch",
    409,
    "Upload-Offset is {got}; the server has {expected} bytes: resume from there.",
    "Upload-Offset 为 {got}，服务器已收到 {expected} 字节，请从该位置续传。",
)
_p(
    "upload.content_type",
    415,
    "Send the chunk as Content-Type: application/offset+octet-stream.",
    "请以 Content-Type: application/offset+octet-stream 发送数据块。",
)
_p(
    "upload.checksum_unsupported",
    400,
    "Upload-Checksum algorithm {algorithm} is not supported (sha1, sha256).",
    "不支持 Upload-Checksum 算法 {algorithm}（支持 sha1、sha256）。",
)
_p(
    "upload.checksum_mismatch",
    460,
    "The chunk does not match its Upload-Checksum: it was dropped, send it again.",
    "数据块与 Upload-Checksum 不符，已丢弃，请重新发送。",
)
_p(
    "upload.hash_mismatch",
    422,
    "The file's SHA-256 is not the declared one: it does not become evidence.",
    "文件的 SHA-256 与声明值不符，不能作为证据。",
)
_p("evidence.not_found", 404, "No such evidence: {sha256}.", "未找到该证据：{sha256}。")
_p(
    "evidence.not_derived",
    404,
    "The {kind} of this evidence is not made yet: try again shortly.",
    "该证据的{kind_zh}尚未生成，请稍后再试。",
)
_p(
    "evidence.reason_required",
    422,
    "Rejecting evidence or asking for more needs a reason.",
    "退回证据或要求补充证据须说明理由。",
)
_p(
    "evidence.time_mismatch",
    200,
    "The photo's EXIF time {exif_time} is {minutes} minutes from the device's capture time {captured_at}.",
    "照片 EXIF 拍摄时间 {exif_time} 与设备记录的拍摄时间 {captured_at} 相差 {minutes} 分钟。",
)
_p(
    "evidence.position_mismatch",
    200,
    "The photo's EXIF position is {distance_m} m from the location of {entity} {id}.",
    "照片 EXIF 位置与{entity_zh} {id} 的地点相距 {distance_m} 米。",
)

# --- HTTP edge: database errors and input (api/errors.py, api/schemas.py) ---
_p(
    "request.concurrent_write",
    409,
    "Another request wrote the same record at the same moment: send yours again.",
    "另一请求同时写入了同一记录，请重新提交。",
)
# --- legal core: cases, review, roster and rules -----------------------------------------------
_p(
    "org.auxiliary_cannot_enforce",
    422,
    "A grid worker is an auxiliary force and holds no enforcement authority: the role {role} "
    "cannot go with grid_worker.",
    "网格员属于辅助力量，不具有执法权，不能同时授予“{role}”角色。",
)
_p(
    "org.last_admin",
    409,
    "{username} is the street's last active admin: make someone else an admin first.",
    "{username} 是本街道唯一在用的管理员，请先为其他人员授予管理员角色。",
)
# flags the rule check puts on an inspection's measures (status 200: a mark, never a rejection)
_p(
    "inspection.measure_finding_required",
    200,
    "A measure names no finding and not every finding allows it: name the finding it serves.",
    "措施未关联问题，且并非每个问题都允许该措施：请注明该措施针对的问题。",
)
_p(
    "inspection.measure_evidence_not_attached",
    200,
    "A photo-evidence measure names photos that are not among the inspection's evidence.",
    "拍照取证措施所列照片不在本次检查的证据中。",
)
_p(
    "evidence.custody_append_only",
    409,
    "The chain of custody is only ever added to: its entries never change.",
    "证据监管链只能追加记录，已有记录不得更改。",
)
# the back office's review of an inspection (inspections/review.py)
_p(
    "inspection.review_captain_only",
    403,
    "A flagged inspection is reviewed by the team captain only.",
    "被标记的检查记录只能由综合执法队队长审核。",
)
_p(
    "inspection.review_wrong_decision",
    409,
    "A {kind} inspection is decided by {allowed}, not {decision}.",
    "{kind_zh}的检查记录的审核结论应为 {allowed}，而非 {decision}。",
)
_p(
    "inspection.review_note_required",
    422,
    "The decision {decision} needs a note saying why.",
    "审核结论 {decision} 须填写说明理由。",
)
# --- reports: the back office's assignment (inspections.reports) ------------------------------
_p("report.not_found", 404, "No such report: {id}.", "未找到该上报事件：{id}。")
_p(
    "report.not_submitted",
    409,
    "The report is a draft still being written on its author's phone: it is assigned once "
    "submitted.",
    "该上报事件仍是草稿，正在上报人手机上填写，提交后方可分派。",
)
_p(
    "report.assignee_unknown",
    422,
    "Person {id} is not on your street's roster.",
    "人员 {id} 不在本街道名册中。",
)
_p(
    "report.assignee_inactive",
    422,
    "Person {id} is no longer active: a report goes to someone who is.",
    "人员 {id} 已停用，上报事件须分派给在岗人员。",
)
_p(
    "report.assignee_not_eligible",
    422,
    "Person {id} does not take reports: only grid workers, officers and the captain do.",
    "人员 {id} 不承接上报事件：只能分派给网格员、执法人员或队长。",
)
