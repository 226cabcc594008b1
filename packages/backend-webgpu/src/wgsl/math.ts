/**
 * Scalar maths in f32 that WGSL lacks or whose builtins are too loose across drivers (Vulkan
 * allows large errors in tanh and friends): numerically stable forms, accurate to a few ulp.
 */
export const MATH_HELPERS = `
// Through a var, so no const-expression evaluates to a non-finite value (a WGSL error).
fn inf_f() -> f32 { var b = 0x7f800000u; return bitcast<f32>(b); }
fn nan_f() -> f32 { var b = 0x7fc00000u; return bitcast<f32>(b); }
fn log1p_f(x: f32) -> f32 {
  let u = 1.0 + x;
  if (u == 1.0) { return x; }
  return log(u) * x / (u - 1.0);
}
fn sigmoid_f(x: f32) -> f32 {
  if (x >= 0.0) { return 1.0 / (1.0 + exp(-x)); }
  let e = exp(x);
  return e / (1.0 + e);
}
fn softplus_f(x: f32) -> f32 {
  if (x > 0.0) { return x + log1p_f(exp(-x)); }
  return log1p_f(exp(x));
}
fn tanh_f(x: f32) -> f32 {
  let e = exp(-2.0 * abs(x));
  return sign(x) * (1.0 - e) / (1.0 + e);
}
// erf through erfc's Chebyshev fit (Numerical Recipes), fractional error below 1.2e-7.
fn erf_f(x: f32) -> f32 {
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806
    + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return select(r - 1.0, 1.0 - r, x >= 0.0);
}
fn gelu_f(x: f32) -> f32 { return 0.5 * x * (1.0 + erf_f(x * 0.7071067811865476)); }
fn pow_f(a: f32, b: f32) -> f32 {
  if (b == 0.0) { return 1.0; }
  if (a > 0.0) { return exp2(b * log2(a)); }
  if (a == 0.0) { return select(select(0.0, inf_f(), b < 0.0), 0.0, b > 0.0); }
  if (b != trunc(b)) { return nan_f(); }
  let m = exp2(b * log2(-a));
  return select(m, -m, (i32(b) & 1) == 1);
}
fn f32_to_u32_wrap(x: f32) -> u32 {
  let t = trunc(x);
  if (t < 0.0) { return bitcast<u32>(i32(t)); }
  return u32(t);
}
fn ipow_i32(a: i32, b: i32) -> i32 {
  if (b < 0) {
    if (a == 1) { return 1; }
    if (a == -1) { return select(1, -1, (b & 1) != 0); }
    return 0;
  }
  var base = a;
  var e = b;
  var r = 1;
  loop {
    if (e == 0) { break; }
    if ((e & 1) != 0) { r = r * base; }
    base = base * base;
    e = e >> 1u;
  }
  return r;
}
fn ipow_u32(a: u32, b: u32) -> u32 {
  var base = a;
  var e = b;
  var r = 1u;
  loop {
    if (e == 0u) { break; }
    if ((e & 1u) != 0u) { r = r * base; }
    base = base * base;
    e = e >> 1u;
  }
  return r;
}
`
