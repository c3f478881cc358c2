// Package mp speaks the platform APIs of the Official Account (公众号) and the
// mini-program (小程序) at api.weixin.qq.com: the global access_token and
// jsapi_ticket, web OAuth, mini-program jscode2session, and the JS-SDK
// wx.config signature. All answers share the {errcode, errmsg} error shape,
// which becomes a *wechat.Error.
package mp
