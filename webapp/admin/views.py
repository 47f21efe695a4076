"""The admin area (`/admin`): venue settings, spaces, users, custom fields. Admins only.

Public API: `bp`, the "admin" blueprint; endpoints `admin.index`, `admin.venue`, `admin.spaces`,
`admin.space_new`, `admin.space_edit`, `admin.space_delete`, `admin.space_active`, `admin.users`,
`admin.user_new`, `admin.user_edit`, `admin.user_active`, `admin.fields`, `admin.field_new`,
`admin.field_edit`, `admin.field_delete`.

Views parse a form, call one `admin.operations` function and render: a refused change re-renders the form
with what was typed and the messages next to their fields (HTTP 422). The space form takes a photo
(multipart): for signed-in admins its request may be up to `SPACE_FORM_MAX_BYTES` (the app's limit is 1 MB);
a larger one is not read at all and gets the form back as stored with a message (413), never a 500. The
activate/deactivate toggles are htmx fragments (`admin/_space_row.html`, `admin/_user_row.html`) that swap their
own table row; the user search re-renders `admin/_user_rows.html`.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import func, or_, select
from werkzeug.exceptions import NotFound, RequestEntityTooLarge

from .. import htmx
from ..api.schemas import MAX_ID  # ids are 32-bit on PostgreSQL: larger ones cannot exist
from ..auth.models import User
from ..booking.errors import ValidationError
from ..booking.models import PHOTO_MAX_BYTES, CustomField, Space, Venue
from ..extensions import db
from ..venue import current_venue
from . import operations
from .forms import ActiveForm, CustomFieldForm, DeleteForm, SpaceForm, UserForm, VenueForm, show_errors

bp = Blueprint("admin", __name__)

USERS_SHOWN = 200  # a search narrows larger lists
SPACE_FORMS = ("admin.space_new", "admin.space_edit")
# Larger than a photo may be, so that a photo somewhat too large is read and refused next to its field (with the
# rest of the form kept); beyond this the request is not read at all.
SPACE_FORM_MAX_BYTES = 4 * PHOTO_MAX_BYTES


@bp.before_request
@login_required
def require_admin():
    if not current_user.is_admin:
        abort(403)


@bp.url_value_preprocessor
def _allow_photo_uploads(endpoint, values):
    # URL value preprocessors run before every before_request function, the CSRF check's included, which is the
    # first to read the body: the larger limit must be in place by then. Admins only: for everyone else the
    # app's 1 MB stands (they are refused after the body is read anyway).
    if endpoint in SPACE_FORMS and request.method == "POST" and current_user.is_authenticated \
            and current_user.is_admin:
        request.max_content_length = SPACE_FORM_MAX_BYTES


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(error):
    # Raised wherever the body is first read (the CSRF check, or the form), so before the view could look
    # anything up: look up here without aborting, since an error raised by an error handler would be a 500.
    venue = _venue_or_none()
    space, space_form = None, request.endpoint == "admin.space_new"
    if request.endpoint == "admin.space_edit" and venue is not None:
        space_id = request.view_args["space_id"]
        space = db.session.get(Space, space_id) if space_id <= MAX_ID else None
        space_form = space is not None and space.venue_id == venue.id
    if not (space_form and venue is not None and current_user.is_authenticated and current_user.is_admin):
        return render_template("error.html", status=413, title="Too large",
                               message="The request is larger than Roomsync accepts."), 413
    # The body was not read: the form as stored, saying why nothing was saved.
    form = SpaceForm(formdata=None, obj=space)
    _fill_space_form(form, space)
    form.form_errors.append(f"That upload is larger than {SPACE_FORM_MAX_BYTES // 1_000_000} MB, so it was not "
                            f"read and nothing was saved. A photo may be at most {PHOTO_MAX_BYTES // 1_000_000} MB.")
    return _space_form_page(form, space, 413)


def _bound(form_class, obj):
    """A form showing `obj` on GET; on POST only what was sent (a missing field falls back to its default,
    never to the stored value, which may not even be of the field's type)."""
    return form_class(obj=obj) if request.method == "GET" else form_class()


def _venue_or_none() -> Venue | None:
    try:
        return current_venue()
    except NotFound:
        return None


def _space_or_404(space_id: int) -> Space:
    space = db.session.get(Space, space_id) if space_id <= MAX_ID else None
    if space is None or space.venue_id != current_venue().id:
        abort(404)
    return space


def _user_or_404(user_id: int) -> User:
    user = db.session.get(User, user_id) if user_id <= MAX_ID else None
    if user is None:
        abort(404)
    return user


def _field_or_404(field_id: int) -> CustomField:
    custom_field = db.session.get(CustomField, field_id) if field_id <= MAX_ID else None
    if custom_field is None or custom_field.venue_id != current_venue().id:
        abort(404)
    return custom_field


@bp.get("/")
def index():
    return render_template("admin/index.html", venue=_venue_or_none())


# ---------------------------------------------------------------------------------------------- venue


def _venue_page(form: VenueForm, venue: Venue | None, status: int = 200):
    return render_template("admin/venue.html", form=form, venue=venue), status


@bp.route("/venue", methods=["GET", "POST"])
def venue():
    venue = _venue_or_none()  # the first save creates the installation's venue
    form = _bound(VenueForm, venue)
    if request.method == "GET":
        if venue is not None:
            form.load(venue)
        else:
            form.timezone.data = "Europe/London"
    if not form.validate_on_submit():
        return _venue_page(form, venue, 422 if request.method == "POST" else 200)
    try:
        operations.save_venue(venue, form.settings())
    except ValidationError as error:
        show_errors(form, error.fields)
        return _venue_page(form, venue, 422)
    flash("Venue settings saved.", "success")
    return htmx.redirect(url_for("admin.venue"))


# ---------------------------------------------------------------------------------------------- spaces


@bp.get("/spaces")
def spaces():
    venue = current_venue()
    return render_template("admin/spaces.html", venue=venue, spaces=venue.spaces, toggle=ActiveForm(), delete_form=DeleteForm())


def _space_form_page(form: SpaceForm, space: Space | None, status: int = 200):
    return render_template("admin/space_form.html", form=form, space=space, photo=operations.space_photo(space),
                           room_email=operations.room_email_of(space)), status


def _fill_space_form(form: SpaceForm, space: Space | None) -> None:
    """What a form not filled from a request shows besides the space's columns."""
    if space is None:
        form.set_space_choices(current_venue().spaces)
        return
    form.set_space_choices(space.venue.spaces, editing=space)
    form.tags.data = ", ".join(space.tags or [])
    form.depends_on.data = [s.id for s in space.depends_on]


@bp.route("/spaces/new", methods=["GET", "POST"])
def space_new():
    venue = current_venue()
    form = SpaceForm()
    form.set_space_choices(venue.spaces)
    if not form.validate_on_submit():
        return _space_form_page(form, None, 422 if request.method == "POST" else 200)
    try:
        space = operations.create_space(venue, form.space_input())
    except ValidationError as error:
        show_errors(form, error.fields)
        return _space_form_page(form, None, 422)
    flash(f"{space.name} created.", "success")
    return htmx.redirect(url_for("admin.spaces"))


@bp.route("/spaces/<int:space_id>/edit", methods=["GET", "POST"])
def space_edit(space_id: int):
    space = _space_or_404(space_id)
    form = _bound(SpaceForm, space)
    if request.method == "GET":
        _fill_space_form(form, space)
    else:
        form.set_space_choices(space.venue.spaces, editing=space)
    if not form.validate_on_submit():
        return _space_form_page(form, space, 422 if request.method == "POST" else 200)
    try:
        operations.update_space(space, form.space_input())
    except ValidationError as error:
        show_errors(form, error.fields)
        return _space_form_page(form, space, 422)
    flash(f"{space.name} saved.", "success")
    return htmx.redirect(url_for("admin.spaces"))


@bp.post("/spaces/<int:space_id>/delete")
def space_delete(space_id: int):
    space = _space_or_404(space_id)
    name = space.name
    if not DeleteForm().validate_on_submit():
        abort(400)
    try:
        operations.delete_space(space)
    except ValidationError as error:
        flash(error.fields["form"], "error")
        return htmx.redirect(url_for("admin.space_edit", space_id=space_id))
    flash(f"{name} deleted.", "success")
    return htmx.redirect(url_for("admin.spaces"))


@bp.post("/spaces/<int:space_id>/active")
def space_active(space_id: int):
    space = _space_or_404(space_id)
    form = ActiveForm()
    if not form.validate_on_submit():
        abort(400)
    operations.set_space_active(space, form.target)
    if htmx.is_htmx():
        return render_template("admin/_space_row.html", space=space, toggle=ActiveForm())
    flash(f"{space.name} is now {'active' if space.active else 'inactive'}.", "success")
    return htmx.redirect(url_for("admin.spaces"))


# ---------------------------------------------------------------------------------------------- users


def _search_users(query: str) -> list[User]:
    stmt = select(User).order_by(User.last_name, User.first_name, User.email).limit(USERS_SHOWN)
    for word in query.lower().split():
        stmt = stmt.where(
            or_(*(func.lower(column).contains(word, autoescape=True) for column in (User.email, User.first_name, User.last_name)))
        )
    return list(db.session.scalars(stmt))


@bp.get("/users")
def users():
    query = request.args.get("q", "").replace("\x00", "").strip()[:100]  # PostgreSQL refuses NUL
    context = dict(users=_search_users(query), query=query, toggle=ActiveForm(), limit=USERS_SHOWN)
    if htmx.is_htmx():
        return render_template("admin/_user_rows.html", **context)
    return render_template("admin/users.html", **context)


def _user_form_page(form: UserForm, user: User | None, status: int = 200):
    if user is None:
        form.password.description = (
            f"The initial password, at least {operations.MIN_PASSWORD_LENGTH} characters; "
            "they can change it on their profile page."
        )
    else:
        form.password.label.text = "New password"
        form.password.description = "Leave empty to keep the current one."
    return render_template("admin/user_form.html", form=form, user=user), status


@bp.route("/users/new", methods=["GET", "POST"])
def user_new():
    form = UserForm()
    if not form.validate_on_submit():
        return _user_form_page(form, None, 422 if request.method == "POST" else 200)
    try:
        user = operations.create_user(form.user_input())
    except ValidationError as error:
        show_errors(form, error.fields)
        return _user_form_page(form, None, 422)
    flash(f"{user.email} can now sign in.", "success")
    return htmx.redirect(url_for("admin.users"))


@bp.route("/users/<int:user_id>/edit", methods=["GET", "POST"])
def user_edit(user_id: int):
    user = _user_or_404(user_id)
    form = _bound(UserForm, user)
    if request.method == "GET":
        form.password.data = ""
    if not form.validate_on_submit():
        return _user_form_page(form, user, 422 if request.method == "POST" else 200)
    try:
        operations.update_user(user, form.user_input(), current_user)
    except ValidationError as error:
        show_errors(form, error.fields)
        return _user_form_page(form, user, 422)
    flash(f"{user.email} saved.", "success")
    return htmx.redirect(url_for("admin.users"))


@bp.post("/users/<int:user_id>/active")
def user_active(user_id: int):
    user = _user_or_404(user_id)
    form = ActiveForm()
    if not form.validate_on_submit():
        abort(400)
    error_message = None
    try:
        operations.set_user_active(user, form.target, current_user)
    except ValidationError as error:
        error_message = next(iter(error.fields.values()))
    if htmx.is_htmx():
        # The row shows the refusal itself, so the swap happens (htmx does not swap 4xx answers).
        return render_template("admin/_user_row.html", user=user, toggle=ActiveForm(), error=error_message)
    if error_message:
        flash(error_message, "error")
    else:
        flash(f"{user.email} is now {'active' if user.active else 'deactivated'}.", "success")
    return htmx.redirect(url_for("admin.users"))


# ---------------------------------------------------------------------------------------------- custom fields


@bp.get("/fields")
def fields():
    venue = current_venue()
    return render_template("admin/fields.html", fields=venue.custom_fields, delete_form=DeleteForm())


def _field_form_page(form: CustomFieldForm, custom_field: CustomField | None, status: int = 200):
    return render_template("admin/field_form.html", form=form, custom_field=custom_field), status


@bp.route("/fields/new", methods=["GET", "POST"])
def field_new():
    venue = current_venue()
    form = CustomFieldForm()
    if not form.validate_on_submit():
        return _field_form_page(form, None, 422 if request.method == "POST" else 200)
    try:
        custom_field = operations.create_custom_field(venue, form.field_input())
    except ValidationError as error:
        show_errors(form, error.fields)
        return _field_form_page(form, None, 422)
    flash(f"Field {custom_field.label} added.", "success")
    return htmx.redirect(url_for("admin.fields"))


@bp.route("/fields/<int:field_id>/edit", methods=["GET", "POST"])
def field_edit(field_id: int):
    custom_field = _field_or_404(field_id)
    form = _bound(CustomFieldForm, custom_field)
    if request.method == "GET":
        form.choices.data = "\n".join(custom_field.choices or [])
    if not form.validate_on_submit():
        return _field_form_page(form, custom_field, 422 if request.method == "POST" else 200)
    try:
        operations.update_custom_field(custom_field, form.field_input())
    except ValidationError as error:
        show_errors(form, error.fields)
        return _field_form_page(form, custom_field, 422)
    flash(f"Field {custom_field.label} saved.", "success")
    return htmx.redirect(url_for("admin.fields"))


@bp.post("/fields/<int:field_id>/delete")
def field_delete(field_id: int):
    custom_field = _field_or_404(field_id)
    if not DeleteForm().validate_on_submit():
        abort(400)
    label = custom_field.label
    operations.delete_custom_field(custom_field)
    flash(f"Field {label} deleted.", "success")
    return htmx.redirect(url_for("admin.fields"))
