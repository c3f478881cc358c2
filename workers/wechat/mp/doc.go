// Package mp speaks the Official Account and mini-program platform APIs
// (api.weixin.qq.com): the global access_token and jsapi_ticket, web OAuth,
// mini-program jscode2session, and the JS-SDK wx.config signature
// (REFERENCE sections 2 and 3). All answers share the {errcode, errmsg} error
// shape, which becomes a *wechat.Error.
package mp
