// veil.Error: every veil::Error becomes a Python exception (a RuntimeError) carrying
// Veil's message and its error code's name in `code`.
#include "common.hpp"

namespace vpy {
namespace {

PyObject* g_error = nullptr;

const char* code_name(veil::ErrorCode c) {
  switch (c) {
    case veil::ErrorCode::InvalidArgument: return "InvalidArgument";
    case veil::ErrorCode::InsecureParameters: return "InsecureParameters";
    case veil::ErrorCode::ContextMismatch: return "ContextMismatch";
    case veil::ErrorCode::LevelMismatch: return "LevelMismatch";
    case veil::ErrorCode::ScaleMismatch: return "ScaleMismatch";
    case veil::ErrorCode::MissingKey: return "MissingKey";
    case veil::ErrorCode::Serialization: return "Serialization";
    case veil::ErrorCode::Backend: return "Backend";
    case veil::ErrorCode::Unsupported: return "Unsupported";
  }
  return "Unknown";
}

}  // namespace

void bind_errors(nb::module_& m) {
  g_error = PyErr_NewExceptionWithDoc(
      "veil.Error",
      "A Veil error (C++ veil::Error): the message says what and why; `code` names the kind "
      "(InvalidArgument, ContextMismatch, LevelMismatch, ScaleMismatch, MissingKey, "
      "Serialization, Backend, Unsupported, InsecureParameters).",
      PyExc_RuntimeError, nullptr);
  m.attr("Error") = nb::handle(g_error);
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const veil::Error& e) {
      PyObject* exc = PyObject_CallFunction(g_error, "s", e.what());
      if (exc == nullptr) return;  // the call's own exception stands
      PyObject* code = PyUnicode_FromString(code_name(e.code()));
      if (code != nullptr) {
        PyObject_SetAttrString(exc, "code", code);
        Py_DECREF(code);
      }
      PyErr_SetObject(g_error, exc);
      Py_DECREF(exc);
    }
  });
}

}  // namespace vpy
